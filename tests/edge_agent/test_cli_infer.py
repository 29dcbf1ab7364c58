"""Zero results is a failure: `edge-agent infer` and the pipeline say why no window formed."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli import main
from edge_agent.config.models import AlarmConfig
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime import load_model
from edge_agent.sim.vibration import CHANNELS, MachineConditions, generate
from edge_agent.stream.blocks import SampleBlock
from tests.conftest import REPO_ROOT, read_jsonl, run_cli

RATE = 25600.0  # vibration-anomaly: window 8192, hop 4096
ANOMALY = REPO_ROOT / "models/vibration-anomaly"
T0 = 1_732_440_000.0


def _vibration_csv(path: Path, with_time: bool, pause_every: int = 0) -> Path:
    """40960 samples of 3 axes at 25.6 kHz; with a ts column (a 2 s pause every `pause_every`
    samples, if given) or without one."""
    values = generate(MachineConditions(fault="healthy", shaft_hz=28.0), 40960, RATE, seed=3)
    index = np.arange(len(values))
    ts = T0 + index / RATE + (2.0 * (index // pause_every) if pause_every else 0.0)
    rows = [
        (f"{t:.6f}," if with_time else "") + f"{ax:.5f},{ay:.5f},{az:.5f}"
        for t, (ax, ay, az) in zip(ts, values)
    ]
    header = ("ts," if with_time else "") + "ax,ay,az"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_infer_on_a_recording_with_gaps_exits_3_with_the_reason(tmp_path: Path) -> None:
    """Test that the real `edge-agent infer` process exits 3 with one error line naming the gaps
    when a recording's holes leave no complete window."""
    recording = _vibration_csv(tmp_path / "gappy.csv", with_time=True, pause_every=5000)
    out = tmp_path / "out.jsonl"
    result = run_cli("infer", str(ANOMALY), "--input", str(recording), "--output", str(out))
    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edge-agent: error:")]
    assert errors == [result.stderr.splitlines()[-1]]  # one line, the last
    assert errors[0] == (
        f"edge-agent: error: {recording}: no window formed from 40960 samples: time gaps above "
        "1.5 sample periods in 8 places; largest 2 s; longest unbroken stretch 5000 samples "
        "(a window needs 8192)"
    )
    assert "Traceback" not in result.stderr
    assert read_jsonl(out) == []


def test_infer_on_rows_without_a_rate_says_to_give_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Test that row data without --sample-rate fails with a hint, and with it gives results."""
    recording = _vibration_csv(tmp_path / "rows.csv", with_time=False)
    out = tmp_path / "out.jsonl"
    args = ["infer", str(ANOMALY), "--input", str(recording), "--output", str(out)]
    assert main(args) == 3
    stderr = capsys.readouterr().err.strip()
    assert stderr.startswith(f"edge-agent: error: {recording}: no window formed from 40960")
    assert "\n" not in stderr
    assert stderr.endswith(
        "the recording has no 'ts' column, so rows were taken as one per second: give "
        "--sample-rate (the model expects 25600 Hz)"
    )
    assert main([*args, "--sample-rate", "25600"]) == 0
    results = [r for r in read_jsonl(out) if r["type"] == "result"]
    assert len(results) == (40960 - 8192) // 4096 + 1
    assert "9 results from 40960 samples" in capsys.readouterr().err


def test_infer_on_fewer_rows_than_a_window_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Test that a per-cycle recording shorter than the model's window is an error, not 0."""
    bundle = REPO_ROOT / "models/cmapss-fd001-rul"
    spec = load_model(bundle).manifest.input
    mean = np.asarray(spec.features[0].mean)
    lines = [",".join(["cycle", *spec.channels])]
    lines += [",".join([str(c), *(f"{v:.4f}" for v in mean)]) for c in range(1, 31)]
    recording = tmp_path / "engine.csv"
    recording.write_text("\n".join(lines) + "\n")
    code = main(["infer", str(bundle), "--input", str(recording), "--time-column", "cycle"])
    assert code == 3
    assert capsys.readouterr().err.strip() == (
        f"edge-agent: error: {recording}: no window formed from 30 samples: fewer samples than "
        f"one window ({spec.window}) arrived"
    )


# ---- the pipeline: a warning at once, one per kind of stall -------------------------------------


@pytest.fixture(scope="module")
def anomaly_runner():
    return load_model(ANOMALY)


def _block(start: int, n: int, t0: float, channels: tuple[str, ...] = CHANNELS) -> SampleBlock:
    values = np.ones((n, len(channels))) * np.arange(start, start + n)[:, None]
    return SampleBlock("m", channels, values, t0, rate_hz=RATE)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "edge_agent.pipeline" and r.levelno == logging.WARNING
    ]


def test_pipeline_warns_at_once_and_once_per_kind_of_stall(
    anomaly_runner, caplog: pytest.LogCaptureFixture
) -> None:
    """Test that a stalled pipeline warns as soon as window + hop samples formed nothing, does not
    repeat per block, warns again when the reason changes, and notes recovery."""
    caplog.set_level(logging.INFO, logger="edge_agent.pipeline")
    pipeline = ModelPipeline("dev", "anomaly", anomaly_runner, AlarmConfig(), [])
    assert pipeline.no_output_reason() is None  # nothing arrived: idle, not stalled
    for i in range(20):  # 2560 samples then a 1 s hole, again and again
        pipeline.push(_block(0, 2560, T0 + i * 1.2))
        # 5 blocks are the first more than window + hop = 12288 samples.
        assert len(_warnings(caplog)) == (1 if i >= 4 else 0)
    assert _warnings(caplog) == [
        "model anomaly: no window formed from 12800 samples: time gaps above 1.5 sample "
        "periods in 4 places; largest 1.1 s; longest unbroken stretch 2560 samples "
        "(a window needs 8192)"
    ]
    reason = pipeline.no_output_reason()
    assert reason is not None and reason.startswith("no window formed from 51200 samples")
    for i in range(25):  # now two axes only: once they cost more samples, the reason changed
        pipeline.push(_block(0, 2560, T0 + 100 + i, channels=("ax", "ay")))
    assert len(_warnings(caplog)) == 2
    assert "lack channel(s) az" in _warnings(caplog)[1]
    for i in range(4):  # continuous again: a window forms
        pipeline.push(_block(i * 2560, 2560, T0 + 200 + i * 2560 / RATE))
    assert pipeline.results == 1
    assert pipeline.no_output_reason() is None
    assert [r.getMessage() for r in caplog.records][-1] == "windows forming again"


def test_agent_replay_whose_windows_are_all_dropped_exits_3(tmp_path: Path) -> None:
    """Test that `edge-agent run` on a finite replay that forms no window warns at once, ends
    with exit 3 and one error line with the reason, instead of 0 results and exit 0."""
    recording = _vibration_csv(tmp_path / "gappy.csv", with_time=True, pause_every=5000)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "gaps"\n[[sources]]\nkind = "replay"\nid = "m1"\npath = "{recording}"\n'
        f'[[models]]\nbundle = "{ANOMALY}"\nsource = "m1"\n'
        f'[[sinks]]\nkind = "jsonl"\npath = "{tmp_path / "out.jsonl"}"\n'
    )
    result = run_cli("run", "-c", str(config))
    assert result.returncode == 3, result.stderr
    assert read_jsonl(tmp_path / "out.jsonl") == []
    errors = [x for x in result.stderr.splitlines() if x.startswith("edge-agent: error:")]
    assert errors == [
        "edge-agent: error: model vibration-anomaly: no window formed from 40960 samples: time "
        "gaps above 1.5 sample periods in 8 places; largest 2 s; longest unbroken stretch 5000 "
        "samples (a window needs 8192)"
    ]
    warned = [x for x in result.stderr.splitlines() if '"stall"' in x]
    assert warned, "the pipeline warned while running, not only at the end"
