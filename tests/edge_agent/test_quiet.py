"""The interpreters' start-up noise never reaches the user's stderr, and everything else does."""

from __future__ import annotations

import os
import subprocess

from edge_agent.quiet import _noise
from tests.conftest import REPO_ROOT, run_cli


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`edge-agent *args` as a real process without TF_CPP_MIN_LOG_LEVEL in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return run_cli(*args, env=env)


def test_litert_and_tensorflow_backends_print_nothing_on_stderr() -> None:
    """Test that check-model on LiteRT and on TensorFlow's interpreter (which prints the XNNPACK,
    absl and oneDNN lines and a deprecation warning unfiltered) leaves stderr empty."""
    for backend in ("ai_edge_litert", "tensorflow"):
        result = cli("check-model", str(REPO_ROOT / "models/vibration-fault"), "--backend", backend)
        assert result.returncode == 0 and "verified" in result.stdout, result.stderr
        assert result.stderr == "", (backend, result.stderr)


def test_an_error_still_reaches_stderr_whole() -> None:
    """Test that the filter passes other lines unchanged: a bad bundle path is one error line."""
    result = cli("check-model", "/nonexistent/bundle")
    assert result.returncode == 2
    assert result.stderr == "edge-agent: error: /nonexistent/bundle: bundle directory not found\n"


def test_only_the_known_lines_are_noise() -> None:
    """Test the filter's patterns: the three known lines match, look-alikes do not."""
    assert _noise(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert _noise(
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    )
    assert _noise(
        b"I0000 00:00:1795939572.693415   10117 port.cc:153] oneDNN custom operations are on. "
        b"You may see slightly different numerical results"
    )
    assert not _noise(b"INFO: Created TensorFlow Lite delegate for Edge TPU.")
    assert not _noise(b'{"level": "error", "msg": "XNNPACK delegate for CPU."}')
    assert not _noise(b"E0000 00:00:1795939572.693415   10117 port.cc:153] oneDNN failed")
