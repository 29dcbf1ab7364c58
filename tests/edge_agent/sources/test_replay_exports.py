"""Real exports replayed: `;` CSVs with ISO times, labels ignored, gaps, steps back, NAB data."""

from __future__ import annotations

import csv
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli import main
from edge_agent.config.models import AlarmConfig
from edge_agent.config.sources import ReplaySourceConfig
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime import load_model
from edge_agent.sources.replay import ReplaySource
from tests.conftest import REPO_ROOT, read_jsonl, run_cli
from tests.training.test_real_exports import START, steps_for, write_export
from training.cli import main as train_main

NAB = Path(os.environ.get("NAB_DIR", REPO_ROOT.parent / "shared" / "data" / "nab"))
MACHINE = NAB / "machine_temperature_system_failure.csv"

# The tiny anomaly bundle: ax, ay, az at 1 kHz, window 128, hop 64. Windows per unbroken run:
# 1000 rows -> 14, 1500 -> 22, 500 -> 6.


def _results(path: Path) -> list[dict]:
    return [r for r in read_jsonl(path) if r["type"] == "result"]


def _agent_config(folder: Path, bundle: Path, recording: Path, extra: str = "") -> Path:
    config = folder / "agent.toml"
    config.write_text(
        f'device_id = "export"\nshutdown_timeout_s = 5\n'
        f'[[sources]]\nkind = "replay"\nid = "m1"\npath = "{recording}"\n'
        f'time_column = "datetime"\n{extra}\n'
        f'[[models]]\nbundle = "{bundle}"\nsource = "m1"\n'
        f'[[sinks]]\nkind = "jsonl"\npath = "{folder / "out.jsonl"}"\n'
    )
    return config


def _replay(bundle: Path, **options) -> tuple[ReplaySource, ModelPipeline]:
    """Replay a recording in-process through the model's pipeline, as `infer` does."""
    runner = load_model(bundle)
    config = ReplaySourceConfig(kind="replay", id="input", **options)
    source = ReplaySource(config, runner.manifest.input.channels)
    pipeline = ModelPipeline("test", "model", runner, AlarmConfig(enabled=False), [])
    source.run(pipeline.push, threading.Event())
    return source, pipeline


def test_semicolon_iso_export_replays_with_its_label_column_ignored(
    tiny_bundles: dict[str, Path], tmp_path: Path, capsys
) -> None:
    """Test that `edge-agent run` replays a `;` CSV of ISO times with `state` and `operator`
    columns and no `channels`, and `infer` an offset-stamped one, each to the hand-worked 36
    windows at the right UTC times."""
    bundle = tiny_bundles["anomaly"]
    steps = steps_for([1000, 1500], gap_s=1.0)
    naive = write_export(tmp_path / "naive.csv", steps)
    config = _agent_config(tmp_path, bundle, naive)
    checked = run_cli("check-config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert (
        f"source m1: replay {naive}, columns for 1 model(s) and time 'datetime'" in checked.stdout
    )
    result = run_cli("run", "-c", str(config))
    assert result.returncode == 0, result.stderr
    results = _results(tmp_path / "out.jsonl")
    assert len(results) == 14 + 22
    start = START.replace(tzinfo=UTC).timestamp()
    assert results[0]["window"]["start"] == pytest.approx(start, abs=1e-6)
    assert results[14]["window"]["start"] == pytest.approx(start + 0.999 + 1.0, abs=1e-6)

    aware = write_export(
        tmp_path / "aware.csv", steps, offset="+01:00", start=START.replace(hour=9)
    )
    out = tmp_path / "aware.jsonl"
    args = ["infer", str(bundle), "--input", str(aware), "--time-column", "datetime"]
    assert main([*args, "--output", str(out)]) == 0
    assert [r["window"] for r in _results(out)] == [r["window"] for r in results]
    assert "36 results from 2500 samples; recording: 2500 rows: 1 gap" in capsys.readouterr().err


def test_replay_bridges_jitter_within_max_gap_and_splits_longer_gaps(
    tiny_bundles: dict[str, Path], tmp_path: Path, capsys
) -> None:
    """Test that with --max-gap 2-period steps are bridged and the 200 and 50 ms jumps restart
    the window (counted); without it no window forms and the exit is 3 with the gaps named."""
    steps = steps_for([1000, 1500], gap_s=0.2, jitter=0.05, seed=2)
    steps = np.concatenate([steps, [0.05], steps_for([500], jitter=0.05, seed=3)])
    doubled = int(np.count_nonzero(np.isclose(steps, 0.002)))
    recording = write_export(tmp_path / "jitter.csv", steps)
    out = tmp_path / "out.jsonl"
    args = ["infer", str(tiny_bundles["anomaly"]), "--input", str(recording)]
    args += ["--time-column", "datetime", "--output", str(out)]
    assert main([*args, "--max-gap", "0.005"]) == 0
    assert len(_results(out)) == 14 + 22 + 6
    assert capsys.readouterr().err.startswith(
        "42 results from 3000 samples; recording: 3000 rows: 2 gaps above max_gap 5 ms split "
        f"(largest 200 ms), 0 steps back split, {doubled} longer steps bridged; "
        "rejected {'gap_reset': 2}"
    )

    # Without it, every doubled step restarts the window: the user's 0 results, now exit 3.
    breaks = np.flatnonzero(steps > 0.0015)
    longest = int(np.diff([-1, *breaks, len(steps)]).max())  # rows between two breaks
    assert main(args) == 3
    assert capsys.readouterr().err.strip() == (
        f"edge-agent: error: {recording}: no window formed from 3000 samples: time gaps above "
        f"1.5 sample periods in {doubled + 2} places; largest 200 ms; longest unbroken stretch "
        f"{longest} samples (a window needs 128)"
    )


def test_backward_step_restarts_the_window_and_is_counted(
    tiny_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """Test that a clock set back 0.5 s mid-recording restarts the window once (clock_step_back)
    instead of rejecting blocks, so both sides give their full windows and none straddles."""
    recording = write_export(tmp_path / "back.csv", steps_for([1000, 1500], gap_s=-0.5))
    source, pipeline = _replay(
        tiny_bundles["anomaly"], path=recording, time_column="datetime", block_samples=300
    )
    assert source.counters["time_steps_back"] == 1
    assert dict(pipeline.windower.counters) == {"clock_step_back": 1}
    assert pipeline.results == pipeline.windower.windows == 14 + 22


def test_only_long_gaps_exit_3_naming_the_cause(
    tiny_bundles: dict[str, Path], tmp_path: Path, capsys
) -> None:
    """Test that runs of 100 rows between 1 s gaps make `infer` and `run` exit 3 with the gap
    count, the largest gap and the window, not 0 results and exit 0."""
    recording = write_export(tmp_path / "gappy.csv", steps_for([100] * 20, gap_s=1.0))
    args = ["infer", str(tiny_bundles["anomaly"]), "--input", str(recording)]
    args += ["--time-column", "datetime", "--max-gap", "0.005", "--output", str(tmp_path / "o")]
    cause = (
        "no window formed from 2000 samples: time gaps above max_gap 5 ms in 19 places; largest "
        "1 s; longest unbroken stretch 100 samples (a window needs 128)"
    )
    assert main(args) == 3
    assert capsys.readouterr().err.strip() == f"edge-agent: error: {recording}: {cause}"

    config = _agent_config(tmp_path, tiny_bundles["anomaly"], recording, "max_gap = 0.005")
    result = run_cli("run", "-c", str(config))
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines()[-1] == f"edge-agent: error: model tiny-anomaly: {cause}"


def test_check_config_catches_a_replay_file_that_does_not_fit(
    tiny_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """Test that check-config opens the replay file and names a model channel or the time
    column it lacks, in one line (exit 2), and accepts the channel under its mapped name."""
    bundle = tiny_bundles["anomaly"]
    steps = steps_for([300])
    two_axes = write_export(tmp_path / "two.csv", steps, channels=("ax", "ay"))
    config = _agent_config(tmp_path, bundle, two_axes)
    result = run_cli("check-config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"edge-agent: error: {config}: source 'm1': {two_axes} does not fit: model "
        "'tiny-anomaly' needs column(s) ['az'] (header: ['datetime', 'ax', 'ay', 'state', "
        "'operator'])"
    )

    renamed = write_export(tmp_path / "renamed.csv", steps, channels=("ax", "ay", "acc_z"))
    config = _agent_config(tmp_path, bundle, renamed)
    config.write_text(config.read_text() + '[models.channel_map]\naz = "acc_z"\n')
    result = run_cli("check-config", str(config))
    assert result.returncode == 0, result.stderr

    config.write_text(config.read_text().replace('time_column = "datetime"', 'time_column = "t"'))
    result = run_cli("check-config", str(config))
    assert result.returncode == 2
    assert "does not fit: no time column 't' for model(s) ['tiny-anomaly']" in result.stderr


@pytest.fixture(scope="module")
def nab_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny anomaly model trained with `edge-train` on NAB's probationary first 15 %."""
    if not MACHINE.is_file():  # one line, never a skip
        pytest.fail(f"NAB data not found in {NAB}; set NAB_DIR")
    folder = tmp_path_factory.mktemp("nab")
    lines = MACHINE.read_text().splitlines()
    rows = len(lines) - 1
    (folder / "probation.csv").write_text("\n".join(lines[: 1 + int(0.15 * rows)]) + "\n")
    config = folder / "nab.toml"
    config.write_text(
        """
name = "nab-machine-temperature"
task = "anomaly"
[dataset]
kind = "table"
train = "probation.csv"
channels = ["value"]
time_column = "timestamp"
[input]
window = 12
hop = 6
normalise = "channels"
[[input.features]]
op = "flatten"
[model]
architecture = "dense_autoencoder"
dense_units = [4]
epochs = 2
batch_size = 32
"""
    )
    args = ["train", str(config), "--models", str(folder / "m"), "--reports", str(folder / "r")]
    assert train_main(args) == 0
    return folder / "m" / "nab-machine-temperature"


def test_nab_machine_temperature_step_back_is_counted_and_windows_form(
    nab_bundle: Path, tmp_path: Path, capsys
) -> None:
    """Test that the real NAB file (ISO local times every 5 min, one 55 min step back) replays
    through `infer`'s reader: the step back is counted once and each side gives its windows."""
    assert load_model(nab_bundle).manifest.input.sample_rate_hz == pytest.approx(1 / 300, rel=1e-5)
    with MACHINE.open() as handle:
        stamps = [datetime.fromisoformat(row["timestamp"]) for row in csv.DictReader(handle)]
    (back,) = [i for i in range(1, len(stamps)) if stamps[i] <= stamps[i - 1]]
    assert (stamps[back - 1] - stamps[back]).total_seconds() == 55 * 60
    expected = sum((n - 12) // 6 + 1 for n in (back, len(stamps) - back))

    source, pipeline = _replay(nab_bundle, path=MACHINE, time_column="timestamp")
    assert source.counters["time_steps_back"] == 1
    assert dict(pipeline.windower.counters) == {"clock_step_back": 1}
    assert pipeline.results == expected

    out = tmp_path / "nab.jsonl"
    args = ["infer", str(nab_bundle), "--input", str(MACHINE), "--time-column", "timestamp"]
    assert main([*args, "--output", str(out)]) == 0
    assert len(_results(out)) == expected
    assert (
        capsys.readouterr()
        .err.strip()
        .startswith(
            f"{expected} results from 22695 samples; recording: 22695 rows: 0 gaps above 1.5 "
            "sample periods split, 1 step back split (largest 55 min); "
            "rejected {'clock_step_back': 1}"
        )
    )
