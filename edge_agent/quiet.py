"""Keep the interpreters' start-up noise off the user's terminal and the journal.

The libraries' own controls are used where they work: TF_CPP_MIN_LOG_LEVEL (set before
TensorFlow is imported) and Python's warnings filter for tf.lite's deprecation notice. Some
lines ignore them: LiteRT prints `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` on
every interpreter, and TensorFlow 2.20 prints absl's pre-initialisation warning and a oneDNN
INFO line whatever the level says. So file descriptor 2 is routed through a pipe whose reader
drops exactly those lines and passes everything else on unchanged. Delegates and kernels stay
as they are: switching them off would change results and speed.
"""

from __future__ import annotations

import atexit
import faulthandler
import os
import re
import sys
import threading
import warnings

NOISE = re.compile(
    rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*"
)
_installed = False


def quiet_tensorflow() -> None:
    """TensorFlow's C++ INFO and WARNING lines off, unless the user chose a level; tf.lite's
    deprecation notice off (the tensorflow backend is only used when asked for by name)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated")


def filter_native_stderr() -> None:
    """Route fd 2 through the noise filter for the rest of the process (once)."""
    global _installed
    if _installed:
        return
    try:
        original = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        return
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    reader = threading.Thread(
        target=_pass_on, args=(read_end, original), name="stderr-filter", daemon=True
    )
    reader.start()
    # A native crash must still be seen: faulthandler writes to the real stderr.
    faulthandler.enable(file=_Descriptor(original))
    atexit.register(_restore, original, reader)
    _installed = True


def _pass_on(read_end: int, original: int) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not _noise(line))
            if kept:
                os.write(original, kept)
        if pending and not _noise(pending):
            os.write(original, pending)


def _noise(line: bytes) -> bool:
    return NOISE.fullmatch(line.rstrip(b"\r")) is not None


def _restore(original: int, reader: threading.Thread) -> None:
    """At exit: put the real stderr back, which ends the pipe, and let the reader drain it."""
    sys.stderr.flush()
    os.dup2(original, 2)
    reader.join(timeout=2)


class _Descriptor:
    """The smallest file-like object faulthandler accepts: a file descriptor."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd
