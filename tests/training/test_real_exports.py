"""Real exports in: `;` CSVs, ISO date-times, jittered clocks, gaps, steps back, many files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_agent.bundle import read_bundle
from edge_agent.errors import DataError
from edge_agent.recording import ReadOptions, read_recording
from training.cli import main
from training.config import load_config
from training.datasets import build_task_data

RATE = 1000.0  # the tiny bundles' rate: window 128, hop 64
START = datetime(2024, 3, 1, 8, 0, 0)  # naive: a wall-clock time as an export writes it
CHANNELS = ("ax", "ay", "az")


def steps_for(segments: list[int], *, gap_s: float = 1.0, seed: int = 0, jitter: float = 0.0):
    """Time steps (s) of a 1 kHz clock: `segments` runs of rows separated by `gap_s` (negative: a
    step back); inside a run a `jitter` fraction of the steps are two periods long."""
    rng = np.random.default_rng(seed)
    steps = []
    for index, length in enumerate(segments):
        if index:
            steps.append(gap_s)
        inside = np.full(length - 1, 1.0 / RATE)
        inside[rng.random(length - 1) < jitter] = 2.0 / RATE
        steps += inside.tolist()
    return np.asarray(steps)


def write_export(
    path: Path,
    steps: np.ndarray,
    *,
    sep: str = ";",
    offset: str = "",
    start: datetime = START,
    channels: tuple[str, ...] = CHANNELS,
    seed: int = 1,
) -> Path:
    """An export as a data logger writes it: `datetime` as ISO text (milliseconds, `offset`
    appended if given), the channels, a `state` label and an `operator` text column."""
    rng = np.random.default_rng(seed)
    elapsed = np.concatenate([[0.0], np.cumsum(steps)])
    tone = np.sin(2 * np.pi * 50.0 * np.arange(len(elapsed)) / RATE)
    header = sep.join(["datetime", *channels, "state", "operator"])
    rows = [header]
    for i, seconds in enumerate(elapsed):
        when = (start + timedelta(seconds=float(seconds))).isoformat(" ", "milliseconds")
        values = [f"{tone[i] * (k + 1) + rng.normal(scale=0.3):.5f}" for k in range(len(channels))]
        rows.append(sep.join([when + offset, *values, "normal", "night shift"]))
    path.write_text("\n".join(rows) + "\n")
    return path


def table_config(folder: Path, train: str, extra: str = "", name: str = "export-anomaly") -> Path:
    """A tiny anomaly config over `train` (a TOML value), window 128, hop 64."""
    config = folder / f"{name}.toml"
    config.write_text(
        f"""
name = "{name}"
task = "anomaly"
seed = 4
[dataset]
kind = "table"
train = {train}
channels = ["ax", "ay", "az"]
time_column = "datetime"
label_column = "state"
{extra}
[input]
window = 128
hop = 64
normalise = "features"
[[input.features]]
op = "spectrum_bands"
n_bands = 16
f_min = 0.0
f_max = 500.0
[[input.features]]
op = "flatten"
[model]
architecture = "dense_autoencoder"
dense_units = [8]
epochs = 2
batch_size = 16
"""
    )
    return config


def counts(config: Path) -> tuple[int, int, int, list[str]]:
    data = build_task_data(load_config(config)[0])
    return len(data.train.windows), len(data.val.windows), len(data.test.windows), data.notes


# Hand-worked split of one segment (validation 20 %, test 20 %, window 128, hop 64):
# 1000 rows -> 600 / 200 / 200 rows -> 8 / 2 / 2 windows; 1500 -> 900 / 300 / 300 -> 13 / 3 / 3;
# 500 -> 300 / 100 / 100 -> 3 / 0 / 0.


def test_semicolon_iso_export_with_and_without_offset(tmp_path: Path) -> None:
    """Test that a `;` CSV with ISO date-times reads alike naive (UTC), with an offset, and in a
    named zone, and gives the hand-worked windows of its two segments."""
    steps = steps_for([1000, 1500], gap_s=1.0)
    naive = write_export(tmp_path / "naive.csv", steps)
    aware = write_export(
        tmp_path / "aware.csv", steps, offset="+01:00", start=START.replace(hour=9)
    )
    times = read_recording(naive, ["ax"], time="datetime").times
    assert times is not None and times[0] == START.replace(tzinfo=UTC).timestamp()
    np.testing.assert_array_equal(read_recording(aware, ["ax"], time="datetime").times, times)
    berlin = read_recording(
        naive, ["ax"], time="datetime", options=ReadOptions(timezone="Europe/Berlin")
    )
    np.testing.assert_allclose(berlin.times, times - 3600.0)  # 08:00 in Berlin is 07:00 UTC
    for name in ("naive", "aware"):
        config = table_config(tmp_path, f'"{name}.csv"', name=f"iso-{name}")
        train, val, test, notes = counts(config)
        assert (train, val, test) == (8 + 13, 2 + 3, 2 + 3)
        assert notes == [
            f"{name}.csv: 2500 rows in 2 segments; 1 gap above 1.5 sample periods split "
            "(largest 1 s), 0 steps back split"
        ]


def test_jitter_within_max_gap_is_bridged_and_longer_gaps_split(tmp_path: Path) -> None:
    """Test that 2-period steps are bridged under max_gap while 50- and 200-period jumps split,
    both counted; without max_gap the error gives the gaps, the largest and the window."""
    steps = steps_for([1000, 1500], gap_s=0.2, jitter=0.05, seed=2)
    steps = np.concatenate([steps, [0.05], steps_for([500], jitter=0.05, seed=3)])
    write_export(tmp_path / "jitter.csv", steps)
    doubled = int(np.count_nonzero(np.isclose(steps, 2.0 / RATE)))
    assert doubled > 100  # the jitter is real: about 5 % of 3000 steps
    config = table_config(tmp_path, '"jitter.csv"', "max_gap = 0.005")
    train, val, test, notes = counts(config)
    assert (train, val, test) == (8 + 13 + 3, 2 + 3 + 0, 2 + 3 + 0)
    assert notes == [
        f"jitter.csv: 3000 rows in 3 segments; 2 gaps above max_gap 5 ms split (largest 200 ms), "
        f"0 steps back split, {doubled} longer steps bridged"
    ]

    without = table_config(tmp_path, '"jitter.csv"', name="no-max-gap")
    with pytest.raises(DataError) as caught:
        counts(without)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'jitter.csv'}: no complete 128-sample window for the")
    assert f"the data has {doubled + 2} gaps above 1.5 sample periods (largest 200 ms)" in message
    assert "(a window needs 128)" in message and "set dataset.max_gap" in message


def test_backward_step_splits_and_is_counted(tmp_path: Path) -> None:
    """Test that a clock set back half a second splits the recording there and is reported with
    its line, and that no window straddles it."""
    write_export(tmp_path / "back.csv", steps_for([1000, 1500], gap_s=-0.5))
    train, val, test, notes = counts(table_config(tmp_path, '"back.csv"'))
    assert (train, val, test) == (8 + 13, 2 + 3, 2 + 3)
    assert notes == [
        "back.csv: 2500 rows in 2 segments; 0 gaps above 1.5 sample periods split, 1 step back "
        "split (largest 500 ms); first step back at line 1002"
    ]


def test_train_list_and_glob_give_one_bundle(tmp_path: Path, capsys) -> None:
    """Test that `train = ["a.csv", "b*.csv"]` trains one bundle from three files, each its own
    segment even where one file's clock continues the last."""
    write_export(tmp_path / "a.csv", steps_for([1000]))
    # b1 starts one period after a ends: concatenated, a window could straddle the files.
    after_a = START + timedelta(seconds=1.0)
    write_export(tmp_path / "b1.csv", steps_for([1000]), start=after_a, seed=2)
    write_export(tmp_path / "b2.csv", steps_for([1500]), start=after_a + timedelta(hours=1))
    (tmp_path / "notes.txt").write_text("not matched by b*.csv")
    config = table_config(tmp_path, '["a.csv", "b*.csv"]', name="many-files")
    assert counts(config)[:3] == (8 + 8 + 13, 2 + 2 + 3, 2 + 2 + 3)
    args = ["train", str(config), "--models", str(tmp_path / "m"), "--reports", str(tmp_path / "r")]
    assert main(args) == 0
    assert "[data] train 29, val 7, test 7 windows of 128x3" in capsys.readouterr().err
    manifest = read_bundle(tmp_path / "m" / "many-files").manifest
    assert manifest.provenance.dataset.name == "a.csv and 2 more"
    assert manifest.metrics.evaluated_on == f"last 20% of {tmp_path / 'a.csv'} and 2 more files"
    assert manifest.input.sample_rate_hz == RATE

    empty = table_config(tmp_path, '["a.csv", "c*.csv"]', name="no-match")
    with pytest.raises(DataError, match=r"c\*\.csv: dataset.train: no file matches this pattern"):
        counts(empty)


def test_only_long_gaps_is_a_named_error_in_train(tmp_path: Path, capsys) -> None:
    """Test that `edge-train train` on runs of 100 rows between 1 s gaps exits 2 naming the
    gap count, the largest gap and the window."""
    write_export(tmp_path / "gappy.csv", steps_for([100] * 20, gap_s=1.0))
    config = table_config(tmp_path, '"gappy.csv"', "max_gap = 0.005")
    assert main(["train", str(config), "--models", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"edge-train: error: {tmp_path / 'gappy.csv'}: no complete 128-sample window for the "
        "train split: its longest unbroken stretch is 60 samples (a window needs 128); the data "
        "has 19 gaps above max_gap 5 ms (largest 1 s); 0 steps back: raise dataset.max_gap or "
        "shorten input.window"
    )


def test_index_time_reads_rows_at_the_rate(tmp_path: Path) -> None:
    """Test that timestamps coarser than the sample period are refused with a pointer to
    time = 'index', which then takes the rows in order at sample_rate_hz."""
    write_export(tmp_path / "coarse.csv", steps_for([2500]))
    # Whole seconds only: 1000 rows share each timestamp, as in a logger that drops the ms.
    lines = (tmp_path / "coarse.csv").read_text().splitlines()
    coarse = [lines[0]] + [line[:19] + line[23:] for line in lines[1:]]
    (tmp_path / "coarse.csv").write_text("\n".join(coarse) + "\n")
    with pytest.raises(DataError, match="use time = 'index' with sample_rate_hz"):
        counts(table_config(tmp_path, '"coarse.csv"'))
    index = table_config(tmp_path, '"coarse.csv"', 'time = "index"\nsample_rate_hz = 1000.0')
    # 2500 rows -> 1500 / 500 / 500 -> 22 / 6 / 6 windows.
    assert counts(index)[:3] == (22, 6, 6)


def test_delimiter_time_format_and_errors_name_file_and_line(tmp_path: Path) -> None:
    """Test a given delimiter and strptime format, and that a wrong delimiter or a bad date-time
    is one error naming file, line and cause."""
    path = tmp_path / "de.csv"
    path.write_text("Zeit|ax\n01.03.2024 08:00:00|1.5\n01.03.2024 08:00:01|1.6\n")
    options = ReadOptions(delimiter="|", time_format="%d.%m.%Y %H:%M:%S", timezone="Europe/Berlin")
    times = read_recording(path, ["ax"], time="Zeit", options=options).times
    assert times is not None and times[1] - times[0] == 1.0
    assert times[0] == datetime(2024, 3, 1, 7, 0, 0, tzinfo=UTC).timestamp()
    with pytest.raises(DataError) as caught:
        read_recording(path, ["ax"], time="Zeit", options=ReadOptions(delimiter=","))
    assert str(caught.value) == (
        f"{path}:1: missing column(s) ['ax', 'Zeit']; header has ['Zeit|ax'] "
        "(delimiter ',' given; set delimiter = '|'?)"
    )
    path.write_text("Zeit|ax\n01.03.2024 08:00:00|1.5\n2024-03-01 08:00:01|1.6\n")
    with pytest.raises(DataError) as caught:
        read_recording(path, ["ax"], time="Zeit", options=options)
    assert str(caught.value) == (
        f"{path}:3: column 'Zeit': '2024-03-01 08:00:01' does not match time_format "
        "'%d.%m.%Y %H:%M:%S'"
    )
    path.write_text("Zeit;ax\n2024-03-01 08:00:00;1.5\nyesterday;1.6\n")
    with pytest.raises(DataError) as caught:
        read_recording(path, ["ax"], time="Zeit")
    assert str(caught.value) == (
        f"{path}:3: column 'Zeit': 'yesterday' is neither unix seconds nor an ISO-8601 "
        "date-time (give time_format for other layouts)"
    )
