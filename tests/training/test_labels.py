"""Labelled windows (NAB windows.json, start,end CSV) and the probationary period of the table
dataset, on small recordings worked by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import DataError
from edge_agent.recording import ReadOptions
from training.config import TrainConfig
from training.datasets import build_task_data
from training.labels import inside, read_label_windows

T0 = "2024-03-01 08:00:00"


def _recording(path: Path, n: int = 100, back_at: int | None = None) -> Path:
    """Rows one second apart from 08:00:00 UTC as ISO text, value = row number; the clock
    steps back 30 s before row `back_at`."""
    start = 1709280000.0  # 2024-03-01 08:00:00 UTC
    times = start + np.arange(n, dtype=float)
    if back_at is not None:
        times[back_at:] -= 30
    lines = ["timestamp,value"] + [
        f"{datetime.fromtimestamp(t, UTC).strftime('%Y-%m-%d %H:%M:%S')},{i}"
        for i, t in enumerate(times)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_windows_json_and_csv_give_the_same_inclusive_windows(tmp_path: Path) -> None:
    """Test that NAB's windows.json (by file name) and a start,end CSV read alike, both ends
    inclusive, in the dataset's time zone."""
    recording = _recording(tmp_path / "rec.csv")
    (tmp_path / "w.json").write_text(
        json.dumps(
            {"rec.csv": [["2024-03-01 08:00:05.000000", "2024-03-01 08:00:07.000000"]], "x": []}
        )
    )
    (tmp_path / "w.csv").write_text("start,end\n2024-03-01 08:00:05,1709280007\n")
    options = ReadOptions()
    from_json = read_label_windows(tmp_path / "w.json", recording, options)
    from_csv = read_label_windows(tmp_path / "w.csv", recording, options)
    assert from_json.tolist() == from_csv.tolist() == [[1709280005.0, 1709280007.0]]
    times = 1709280000.0 + np.arange(10)
    assert np.flatnonzero(inside(times, from_json)).tolist() == [5, 6, 7]
    berlin = read_label_windows(
        tmp_path / "w.json", recording, ReadOptions(timezone="Europe/Berlin")
    )
    assert berlin[0, 0] == 1709280005.0 - 3600  # 08:00 in Berlin is 07:00 UTC


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ('{"other.csv": []}', "w.json", "no entry for 'rec.csv'"),
        ('{"rec.csv": [["2024-03-01 08:00:09", "2024-03-01 08:00:01"]]}', "w.json", "ends before"),
        ('{"rec.csv": [["soon", "2024-03-01 08:00:01"]]}', "w.json", "'soon' is neither"),
        ("from,to\n1,2\n", "w.csv", "needs 'start' and 'end' columns"),
    ],
)
def test_bad_label_windows_are_one_line(
    tmp_path: Path, content: str, name: str, message: str
) -> None:
    """Test that a label file without the recording, a reversed window, a bad time or a CSV
    without start,end is refused naming the file and the problem."""
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        read_label_windows(tmp_path / name, tmp_path / "rec.csv", ReadOptions())
    assert str(tmp_path / name) in str(caught.value)


def _config(tmp_path: Path, **dataset) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "name": "probation",
            "task": "anomaly",
            "dataset": {
                "kind": "table",
                "train": str(tmp_path / "rec.csv"),
                "channels": ["value"],
                "time_column": "timestamp",
                **dataset,
            },
            "input": {"window": 5, "hop": 1, "normalise": "none"},
            "model": {"architecture": "dense_autoencoder"},
        }
    )


def test_probation_trains_on_its_normal_part_and_scores_the_rest(tmp_path: Path) -> None:
    """Test the NAB split by hand: 100 rows, probation 0.4 (rows 0-39), labelled windows on rows
    10-12 (left out of training) and 50-54; validation is the last 20 % of each normal stretch;
    test windows end on rows 40-99 and may start in the probation; rows 40-99 are scored. The
    windows the agent computes in the probation are kept unevaluated, for the smoothing."""
    _recording(tmp_path / "rec.csv")
    (tmp_path / "w.csv").write_text(
        "start,end\n2024-03-01 08:00:10,2024-03-01 08:00:12\n"
        "2024-03-01 08:00:50,2024-03-01 08:00:54\n"
    )
    config = _config(
        tmp_path, label_windows=str(tmp_path / "w.csv"), probation=0.4, validation_fraction=0.2
    )
    data = build_task_data(config)

    def firsts(split) -> list[float]:
        return split.windows[:, 0, 0].tolist()  # value = row number

    # normal stretches 0-9 (train 0-7, validation 8-9) and 13-39 (train 13-34, validation 35-39)
    assert firsts(data.train) == [0, 1, 2, 3, *range(13, 31)]
    assert firsts(data.val) == [35]
    assert data.test.ends.tolist() == list(range(4, 100))  # every window of the file: one run
    assert data.test.scored.tolist() == [end >= 40 for end in range(4, 100)]
    assert data.test.runs.tolist() == [0] * 96
    test = data.test.evaluated()
    assert firsts(test) == list(range(36, 96))
    assert test.ends.tolist() == list(range(40, 100))
    assert test.targets.tolist() == [int(50 <= end <= 54) for end in range(40, 100)]
    timeline = test.timeline
    assert np.flatnonzero(timeline.scored).tolist() == list(range(40, 100))
    assert np.flatnonzero(timeline.anomalous).tolist() == [10, 11, 12, 50, 51, 52, 53, 54]
    assert timeline.stamp(40) == "2024-03-01 08:00:40"
    assert data.test_description.endswith("after the first 40% of each file (probation)")


def test_test_windows_cross_label_changes_but_not_a_step_back(tmp_path: Path) -> None:
    """Test that with a test file, windows are cut at clock breaks only (a step back before row
    60) and labelled by their last row, as the agent cuts them."""
    _recording(tmp_path / "rec.csv")
    _recording(tmp_path / "test.csv", back_at=60)
    (tmp_path / "w.csv").write_text("start,end\n2024-03-01 08:00:10,2024-03-01 08:00:12\n")
    config = _config(
        tmp_path, test=str(tmp_path / "test.csv"), label_windows=str(tmp_path / "w.csv")
    )
    test = build_task_data(config).test
    ends = [*range(4, 60), *range(64, 100)]
    assert test.ends.tolist() == ends
    assert test.targets.tolist() == [int(10 <= end <= 12) for end in ends]
    assert test.timeline.scored.all()
    # after the step back rows 60-69 repeat the times of rows 30-39: labels follow the times
    assert np.flatnonzero(test.timeline.anomalous).tolist() == [10, 11, 12]


def test_probation_and_label_windows_need_an_anomaly_task(tmp_path: Path) -> None:
    """Test that label_windows and probation are refused for other tasks, and that label_windows
    with a label column is refused."""
    from pydantic import ValidationError

    base = _config(tmp_path, probation=0.15).model_dump(exclude_unset=True)
    with pytest.raises(ValidationError, match=r"dataset\.probation is for task = 'anomaly'"):
        TrainConfig.model_validate(
            {**base, "task": "classification", "model": {"architecture": "cnn1d_classifier"}}
        )
    with pytest.raises(ValidationError, match="label_column or label_windows, not both"):
        _config(tmp_path, label_windows="w.json", label_column="state")


@pytest.mark.parametrize(
    ("config", "rows", "events"),
    [("ambient_temperature.toml", 7267, 2), ("machine_temperature.toml", 22695, 3)],
)
def test_nab_example_configs_follow_the_protocol(config: str, rows: int, events: int) -> None:
    """Test that the shipped NAB configs build from the checkout: training windows only from the
    first 15 % of the file, every later sample scored, and the labelled windows after the cut
    (the machine's first one, a planned shutdown, lies inside the probation)."""
    from tests.conftest import REPO_ROOT
    from training.config import load_config

    data = build_task_data(load_config(REPO_ROOT / "examples" / "nab" / config)[0])
    cut = round(rows * 0.15)
    timeline = data.test.timeline
    assert len(timeline) == rows and int(np.count_nonzero(timeline.scored)) == rows - cut
    evaluated = data.test.evaluated()
    assert evaluated.ends.min() == cut and evaluated.ends.max() == rows - 1
    scored_anomalous = timeline.anomalous & timeline.scored
    runs = np.count_nonzero(scored_anomalous[1:] & ~scored_anomalous[:-1])
    assert runs == events
    assert len(data.train.windows) + len(data.val.windows) < cut


BERLIN_08 = 1709276400.0  # 2024-03-01 08:00:00 in Berlin (UTC+1)


@pytest.mark.parametrize(
    ("layout", "options"),
    [
        ("%Y-%m-%dT%H:%M:%S+01:00", {}),
        ("%d.%m.%Y %H:%M:%S", {"time_format": "%d.%m.%Y %H:%M:%S", "timezone": "Europe/Berlin"}),
        ("%Y-%m-%d %H:%M:%S", {"timezone": "Europe/Berlin"}),
        (None, {}),
    ],
)
def test_window_times_print_in_the_recordings_layout(
    tmp_path: Path, layout: str | None, options: dict
) -> None:
    """Test that test windows' times print as the file writes them (offset, strptime layout,
    local time, unix seconds), without keeping each row's text."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    times = [BERLIN_08 + i for i in range(40)]
    written = [
        repr(t) if layout is None else datetime.fromtimestamp(t, berlin).strftime(layout)
        for t in times
    ]
    (tmp_path / "rec.csv").write_text(
        "timestamp,value\n" + "".join(f"{w},{i}\n" for i, w in enumerate(written))
    )
    config = _config(tmp_path, test=str(tmp_path / "rec.csv"), **options)
    timeline = build_task_data(config).test.timeline
    assert timeline.times.tolist() == times
    assert [timeline.stamp(i) for i in range(40)] == written
