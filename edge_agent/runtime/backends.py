"""Finding a TFLite interpreter. `auto` tries ai-edge-litert, then tflite-runtime; TensorFlow Lite
is used only when asked for by name (a device install has no TensorFlow, and a workstation's
should not silently run a different interpreter than the device)."""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
from typing import Any, Literal, get_args

from edge_agent.errors import RuntimeBackendError

BackendName = Literal["ai_edge_litert", "tflite_runtime", "tensorflow"]
BackendChoice = Literal["auto", "ai_edge_litert", "tflite_runtime", "tensorflow"]
BACKEND_CHOICES: tuple[str, ...] = get_args(BackendChoice)
AUTO_ORDER: tuple[BackendName, ...] = ("ai_edge_litert", "tflite_runtime")
# (module, attribute path to the Interpreter class, attribute path to load_delegate)
_LOCATIONS = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "Interpreter", "load_delegate"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter", "load_delegate"),
    "tensorflow": ("tensorflow", "lite.Interpreter", "lite.experimental.load_delegate"),
}
EDGETPU_LIBRARY = "libedgetpu.so.1"
_INSTALL_HINT = {
    "ai_edge_litert": "pip install 'edge-pdm[agent]'",
    "tflite_runtime": "pip install 'edge-pdm[tflite]'",
    "tensorflow": "pip install tensorflow",
}


class _WrongEnvironment(ImportError):
    """The backend is installed but cannot work in this environment; the message says why."""


def wrong_environment(name: str, numpy_version: str, installed: bool) -> str | None:
    """Why an installed backend cannot work here, or None. tflite-runtime is built against
    numpy 1: under numpy 2 its import prints a page of warnings and fails, which happens when
    another extra is installed later into the same environment."""
    if name == "tflite_runtime" and installed and int(numpy_version.split(".")[0]) >= 2:
        return (
            f"tflite-runtime needs numpy<2 but this environment has numpy {numpy_version}; "
            "give the legacy extra an environment of its own: python3 -m venv .venv-legacy && "
            ".venv-legacy/bin/pip install -e '.[tflite]'"
        )
    return None


def _import(name: BackendName, which: int = 1) -> Any:
    import numpy

    module_name = _LOCATIONS[name][0]
    installed = importlib.util.find_spec(name) is not None
    problem = wrong_environment(name, numpy.__version__, installed)
    if problem is not None:
        raise _WrongEnvironment(problem)
    found: Any = importlib.import_module(module_name)
    for part in _LOCATIONS[name][which].split("."):
        found = getattr(found, part)
    return found


def load_edgetpu_delegate(backend: BackendName, library: str = EDGETPU_LIBRARY) -> Any:
    """The Edge TPU delegate for this backend; RuntimeBackendError says what to install."""
    try:
        # Probe the shared library first: a failed load_delegate leaves a half-built delegate
        # object whose finaliser prints a traceback in some LiteRT versions.
        ctypes.CDLL(library)
        return _import(backend, which=2)(library)
    except (ValueError, OSError, RuntimeError, AttributeError) as exc:
        raise RuntimeBackendError(
            f"Edge TPU delegate {library} could not be loaded with {backend} ({exc}); install "
            "the Edge TPU runtime (Debian package libedgetpu1-std) and plug in the device"
        ) from None


def resolve_interpreter(choice: BackendChoice = "auto") -> tuple[BackendName, Any]:
    """Return (backend name, Interpreter class) for the forced backend or the first that imports."""
    candidates = AUTO_ORDER if choice == "auto" else (choice,)
    failures = []
    for name in candidates:
        try:
            return name, _import(name)
        except _WrongEnvironment as exc:
            failures.append(f"{name} ({exc})")
        except (ImportError, AttributeError) as exc:
            failures.append(f"{name} ({exc}; install with {_INSTALL_HINT[name]})")
    raise RuntimeBackendError("no usable TFLite interpreter: " + "; ".join(failures))
