"""The real `edge-agent` process: a successful SIGHUP reload, and replay with `loop` and `speed`."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np

from edge_agent.sim.vibration import MachineConditions, VibrationSimulator
from tests.conftest import REPO_ROOT, read_jsonl, start_agent, wait_until

RATE = 25600.0
WINDOW, HOP = 8192, 4096  # the vibration bundles' window and hop
T0 = 1_732_440_000.0


def _config(folder: Path, sources: str, models: list[str]) -> Path:
    """JSON logs on stderr, results as JSON lines in out.jsonl; models as (bundle, source)."""
    bindings = "\n".join(
        f'[[models]]\nbundle = "{REPO_ROOT / "models" / name}"\nsource = "m1"' for name in models
    )
    path = folder / "agent.toml"
    path.write_text(
        f'device_id = "test-dev"\nshutdown_timeout_s = 5\n[log]\nformat = "json"\n{sources}\n'
        f'{bindings}\n[[sinks]]\nkind = "jsonl"\npath = "{folder / "out.jsonl"}"\n'
    )
    return path


def _results(folder: Path, model: str) -> list[dict]:
    return [
        e
        for e in read_jsonl(folder / "out.jsonl")
        if e["type"] == "result" and e["model"]["id"] == model
    ]


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    return stderr


def test_sighup_reload_adds_a_model_and_alters_the_stream(tmp_path: Path) -> None:
    """Test that a good reload serves the new config at once and continues sequence numbers."""
    simulator = '[[sources]]\nkind = "simulator"\nid = "m1"\nrealtime = true\nseed = 4'
    config = _config(tmp_path, simulator, ["vibration-fault"])
    process = start_agent(config)
    try:
        wait_until(lambda: len(_results(tmp_path, "vibration-fault")) >= 3, 30, "first results")
        # The new config adds the anomaly model and puts a bearing fault on the machine.
        _config(
            tmp_path,
            simulator + '\nfault = "bearing_outer"',
            ["vibration-fault", "vibration-anomaly"],
        )
        process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: (
                len(_results(tmp_path, "vibration-anomaly")) >= 3
                and any(
                    r["label"] == "bearing_outer" for r in _results(tmp_path, "vibration-fault")
                )
            ),
            30,
            "results of the reloaded config",
        )
        stderr = _stop(process)
    finally:
        process.kill()
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    reloaded = [r for r in logs if r["msg"] == "config reloaded"]
    assert len(reloaded) == 1, logs
    assert reloaded[0]["models"] == ["vibration-fault", "vibration-anomaly"]
    assert not [r for r in logs if r["level"] in {"warning", "error"}], logs
    fault = _results(tmp_path, "vibration-fault")
    anomaly = _results(tmp_path, "vibration-anomaly")
    # One sequence per model across the reload: no restart at 1, no gap, no repeat.
    assert [r["seq"] for r in fault] == list(range(1, len(fault) + 1))
    assert [r["seq"] for r in anomaly] == list(range(1, len(anomaly) + 1))
    labels = [r["label"] for r in fault]
    switch = labels.index("bearing_outer")
    assert switch >= 3 and set(labels[:switch]) == {"healthy"}
    assert set(labels[switch:]) == {"bearing_outer"}  # the altered source, nothing stale
    assert anomaly[-1]["is_anomaly"] is True


def _recording(path: Path, seconds: float) -> Path:
    """Healthy vibration, 3 axes at 25.6 kHz, as NPZ with a ts column starting at T0."""
    sim = VibrationSimulator(MachineConditions(fault="healthy", shaft_hz=28.0), RATE, seed=3)
    values = sim.next_block(int(seconds * RATE)).astype(np.float64)
    ts = T0 + np.arange(len(values)) / RATE
    np.savez(path, ts=ts, ax=values[:, 0], ay=values[:, 1], az=values[:, 2])
    return path


def test_replay_loop_at_speed_10_is_paced_and_continues_the_clock(tmp_path: Path) -> None:
    """Test that loop replays again with later timestamps, and speed 10 takes 1/10 of the span."""
    seconds, speed = 3.0, 10.0
    recording = _recording(tmp_path / "rec.npz", seconds)
    replay = (
        f'[[sources]]\nkind = "replay"\nid = "m1"\npath = "{recording}"\n'
        f"loop = true\nspeed = {speed}"
    )
    process = start_agent(_config(tmp_path, replay, ["vibration-fault"]))
    try:
        # Three passes of the recording and a second into the fourth: windows end beyond
        # T0 + 3 x its length + 1 s, so the paced span measured below is well above 0.8 s.
        wait_until(
            lambda: any(
                r["window"]["end"] > T0 + 3 * seconds + 1.0
                for r in _results(tmp_path, "vibration-fault")
            ),
            30,
            "three passes of the recording",
        )
        _stop(process)
    finally:
        process.kill()
    results = _results(tmp_path, "vibration-fault")
    starts = np.array([r["window"]["start"] for r in results])
    ends = np.array([r["window"]["end"] for r in results])
    assert starts[0] == T0
    # The clock continues over each loop seam: one window every hop, no reset, never back.
    np.testing.assert_allclose(np.diff(starts), HOP / RATE, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ends - starts, (WINDOW - 1) / RATE, rtol=0, atol=1e-6)
    # Pacing: wall time between results is measurement time / speed. The first few results are
    # left out (start-up); bounds are generous, but unpaced (~0.1 s) or real time (10x) fail.
    published = np.array([r["published_at"] for r in results])[5:]
    measured = ends[5:]
    expected = (measured[-1] - measured[0]) / speed
    took = published[-1] - published[0]
    assert expected > 0.8, expected
    assert 0.8 * expected <= took <= 1.5 * expected + 0.5, (took, expected)
