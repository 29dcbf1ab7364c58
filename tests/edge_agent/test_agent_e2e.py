"""The real `edge-agent` process: replay, graceful SIGTERM, SIGHUP reload, bad bundles."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_agent.sim.vibration import MachineConditions, VibrationSimulator
from tests.conftest import REPO_ROOT, read_jsonl, run_cli, start_agent, wait_for_more, wait_until

RATE = 25600.0


def _recording(path: Path) -> Path:
    """2 s healthy then 2 s outer-race defect, 3 axes at 25.6 kHz, as NPZ with a ts column."""
    sim = VibrationSimulator(MachineConditions(fault="healthy", shaft_hz=28.0), RATE, seed=3)
    healthy = sim.next_block(int(2 * RATE))
    sim.set_conditions(MachineConditions(fault="bearing_outer", shaft_hz=28.0))
    faulty = sim.next_block(int(2 * RATE))
    values = np.concatenate([healthy, faulty]).astype(np.float64)
    ts = 1_732_440_000.0 + np.arange(len(values)) / RATE
    np.savez(path, ts=ts, ax=values[:, 0], ay=values[:, 1], az=values[:, 2])
    return path


def _config(folder: Path, source: str, bundle: Path | None = None) -> Path:
    bundle = bundle or REPO_ROOT / "models/vibration-fault"
    text = f"""
device_id = "test-dev"
shutdown_timeout_s = 5
[log]
format = "json"
{source}
[[models]]
bundle = "{bundle}"
source = "m1"
[[sinks]]
kind = "jsonl"
path = "{folder / "out.jsonl"}"
"""
    path = folder / "agent.toml"
    path.write_text(text)
    return path


def test_replay_as_fast_as_possible_gives_every_window(tmp_path: Path) -> None:
    """Test that replaying a recording yields one correct result per window, then exits 0."""
    recording = _recording(tmp_path / "rec.npz")
    config = _config(tmp_path, f'[[sources]]\nkind = "replay"\nid = "m1"\npath = "{recording}"')
    result = run_cli("run", "-c", str(config))
    assert result.returncode == 0, result.stderr
    events = read_jsonl(tmp_path / "out.jsonl")
    results = [e for e in events if e["type"] == "result"]
    assert len(results) == (int(4 * RATE) - 8192) // 4096 + 1 == 24
    assert [r["seq"] for r in results] == list(range(1, 25))
    assert results[0]["label"] == "healthy" and results[-1]["label"] == "bearing_outer"
    assert results[0]["window"]["start"] == 1_732_440_000.0
    alarms = [e for e in events if e["type"] == "alarm"]
    assert [a["state"] for a in alarms] == ["raised"]
    assert "Traceback" not in result.stderr


def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    """Test that SIGTERM on a live simulator stops within the shutdown timeout with exit 0."""
    config = _config(tmp_path, '[[sources]]\nkind = "simulator"\nid = "m1"\nrealtime = true')
    process = start_agent(config, stdout=subprocess.PIPE)
    try:
        wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 2, 30, "first results")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0
    stopped = [json.loads(line) for line in stderr.splitlines() if '"agent stopped"' in line]
    assert stopped and stopped[0]["stats"]["models"]["vibration-fault"]["results"] >= 2


def test_sighup_with_broken_bundle_keeps_serving(tmp_path: Path) -> None:
    """Test that a reload to a corrupt bundle is refused while the old model keeps serving."""
    broken = tmp_path / "broken"
    shutil.copytree(REPO_ROOT / "models/vibration-fault", broken)
    config = _config(tmp_path, '[[sources]]\nkind = "simulator"\nid = "m1"\nrealtime = true')
    process = start_agent(config, stdout=subprocess.PIPE)
    try:
        wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 1, 30, "first result")
        (broken / "model.tflite").write_bytes(b"garbage")
        config.write_text(
            config.read_text().replace(str(REPO_ROOT / "models/vibration-fault"), str(broken))
        )
        process.send_signal(signal.SIGHUP)
        wait_for_more(
            lambda: len(read_jsonl(tmp_path / "out.jsonl")),
            3,
            30,
            "results after the failed reload",
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "reload failed; previous config keeps running" in stderr
    assert "sha256" in stderr
    seqs = [e["seq"] for e in read_jsonl(tmp_path / "out.jsonl") if e["type"] == "result"]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.parametrize("damage", ["truncate", "missing"])
def test_bad_bundle_at_start_exits_2_with_one_line(tmp_path: Path, damage: str) -> None:
    """Test that a corrupt or missing bundle at start is refused clearly, exit 2, no traceback."""
    bundle = tmp_path / "b"
    shutil.copytree(REPO_ROOT / "models/vibration-fault", bundle)
    if damage == "truncate":
        model = bundle / "model.tflite"
        model.write_bytes(model.read_bytes()[:500])
    else:
        shutil.rmtree(bundle)
    config = _config(tmp_path, '[[sources]]\nkind = "simulator"\nid = "m1"', bundle)
    result = run_cli("run", "-c", str(config), timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("edge-agent: error: ")
    assert (
        "does not match" if damage == "truncate" else "bundle directory not found"
    ) in result.stderr
    assert "Traceback" not in result.stderr


def test_infer_writes_jsonread_jsonl(tmp_path: Path) -> None:
    """Test that `edge-agent infer` runs a bundle over a recording and prints results, and
    input health lines: healthy at the start, the fault's impacts outside the training range."""
    recording = _recording(tmp_path / "rec.npz")
    out = tmp_path / "infer.jsonl"
    result = run_cli(
        "infer",
        str(REPO_ROOT / "models/vibration-anomaly"),
        "--input",
        str(recording),
        "--output",
        str(out),
        "--no-alarms",
    )
    assert result.returncode == 0, result.stderr
    lines = read_jsonl(out)
    rows = [r for r in lines if r["type"] == "result"]
    inputs = [r for r in lines if r["type"] == "input_health"]
    assert len(rows) == 24 and len(lines) == len(rows) + len(inputs)
    assert rows[0]["is_anomaly"] is False and rows[-1]["is_anomaly"] is True
    assert inputs[0]["healthy"] and inputs[0]["change"] is None
    assert not inputs[-1]["healthy"], inputs[-1]
    assert "24 results from 102400 samples" in result.stderr
