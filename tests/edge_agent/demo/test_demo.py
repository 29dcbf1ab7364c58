"""`edge-agent demo` as a user runs it, non-interactively: the real agent on a real broker
(Mosquitto, and the embedded amqtt), the injected fault detected within the promised time,
a summary, a report; Ctrl-C ends it cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.demo.run import PROMISED_DETECTION_S
from tests.conftest import read_jsonl

FAULT_AT = 5.0


def demo(folder: Path, *extra: str) -> subprocess.Popen[str]:
    """The demo run from `folder` with a relative output folder, as `make demo` runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "demo", "--no-live", "--out", "out", *extra],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_demo_detects_the_fault_in_time_and_writes_a_report(tmp_path: Path, broker: str) -> None:
    """Test a 14 s demo with the fault at 5 s: both models raise their alarm within the
    promised time after it, the summary says so, and results and report files exist."""
    extra = ["--embedded-broker"] if broker == "amqtt" else []
    process = demo(tmp_path, "--duration", "14", "--fault-at", str(FAULT_AT), *extra)
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 0, stdout + stderr
    assert stderr == ""  # nothing from TensorFlow or the interpreter reaches the terminal
    assert ("embedded amqtt" if broker == "amqtt" else "Mosquitto") in stdout
    assert "mosquitto_sub -h 127.0.0.1 -p " in stdout
    pattern = r"(vibration-\w+): \d+ windows processed; alarm raised ([+-][\d.]+) s from"
    delays = {model: float(delay) for model, delay in re.findall(pattern, stdout)}
    assert set(delays) == {"vibration-fault", "vibration-anomaly"}, stdout
    assert all(0 <= d <= PROMISED_DETECTION_S for d in delays.values()), delays
    assert re.search(r"latency .*p50 \d+ ms, p99 \d+ ms", stdout)
    results = [r for r in read_jsonl(tmp_path / "out/results.jsonl") if r["type"] == "result"]
    assert len(results) > 100
    assert (tmp_path / "out/report.html").read_text().startswith("<!doctype html>")


def test_ctrl_c_ends_the_demo_cleanly(tmp_path: Path) -> None:
    """Test that SIGINT after the first results stops the agent and prints the summary, exit 0."""
    process = demo(tmp_path, "--duration", "0")
    assert process.stdout is not None
    for line in process.stdout:
        if "first results" in line:
            break
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, rest + stderr
    assert "Summary after" in rest and "windows processed" in rest
    log = (tmp_path / "out/agent.log").read_text()
    assert 'msg="agent stopped"' in log  # the agent shut down cleanly, not killed
