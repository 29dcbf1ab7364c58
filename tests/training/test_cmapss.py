"""Tests for the C-MAPSS loader: the real FD001 files, and hand-made malformed copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import DataError
from training.datasets.cmapss import (
    ALL_COLUMNS,
    RUL_CAP,
    SENSORS,
    Engine,
    capped,
    fingerprint,
    load_engines,
    read_table,
    split_units,
    truncated_cuts,
)


def _row(unit: int, cycle: int) -> str:
    """One well-formed 26-column row; sensor values are arbitrary but distinct per column."""
    return " ".join([str(unit), str(cycle), *(f"{c}.5" for c in range(24))])


def _table(*rows: tuple[int, int]) -> str:
    return "".join(_row(u, c) + "\n" for u, c in rows)


@pytest.fixture(scope="module")
def fd001_train(cmapss_dir: Path) -> list[Engine]:
    return load_engines(cmapss_dir, "FD001", "train")


@pytest.fixture(scope="module")
def fd001_test(cmapss_dir: Path) -> list[Engine]:
    return load_engines(cmapss_dir, "FD001", "test")


def test_real_train_split_shape(fd001_train: list[Engine]) -> None:
    """Test that FD001 train has the published 100 engines and 20631 rows."""
    assert len(fd001_train) == 100
    assert [e.unit for e in fd001_train] == list(range(1, 101))
    assert sum(len(e.cycles) for e in fd001_train) == 20631
    assert len(fd001_train[0].cycles) == 192  # unit 1 fails at cycle 192


def test_real_test_split_shape(fd001_test: list[Engine]) -> None:
    """Test that FD001 test has the published 100 engines and 13096 rows."""
    assert len(fd001_test) == 100
    assert sum(len(e.cycles) for e in fd001_test) == 13096


def test_train_rul_counts_down_to_zero(fd001_train: list[Engine]) -> None:
    """Test that every train engine runs to failure, so its last-row RUL is 0."""
    for engine in fd001_train:
        assert engine.rul[-1] == 0
        np.testing.assert_array_equal(np.diff(engine.rul), -1.0)
        assert engine.rul[0] == len(engine.cycles) - 1


def test_test_rul_ends_at_rul_file(fd001_test: list[Engine], cmapss_dir: Path) -> None:
    """Test that each test engine's last-row RUL is its line in RUL_FD001.txt."""
    expected = np.loadtxt(cmapss_dir / "RUL_FD001.txt")
    np.testing.assert_array_equal([e.rul[-1] for e in fd001_test], expected)
    assert fd001_test[0].rul[-1] == 112  # first line of RUL_FD001.txt
    np.testing.assert_array_equal(np.diff(fd001_test[0].rul), -1.0)


def test_sensor_columns_in_sensors_order(
    fd001_train: list[Engine], fd001_test: list[Engine], cmapss_dir: Path
) -> None:
    """Test that values hold the 14 kept sensors in SENSORS order, matching the raw file."""
    assert len(ALL_COLUMNS) == 26 and len(SENSORS) == 14
    assert fd001_train[0].values.shape == (192, 14)
    assert fd001_train[0].values.dtype == np.float64
    # First row of train_FD001.txt: s2 = 641.82, s21 = 23.419.
    assert fd001_train[0].values[0, SENSORS.index("s2")] == 641.82
    assert fd001_train[0].values[0, SENSORS.index("s21")] == 23.419
    raw = read_table(cmapss_dir / "test_FD001.txt")
    columns = [ALL_COLUMNS.index(s) for s in SENSORS]
    first = fd001_test[0]
    np.testing.assert_array_equal(first.values, raw[: len(first.cycles), columns])


def test_engine_arrays_are_read_only(fd001_train: list[Engine]) -> None:
    """Test that engine arrays cannot be edited in place, so shared data stays intact."""
    with pytest.raises(ValueError):
        fd001_train[0].values[0, 0] = 0.0


def test_fingerprint_stable_and_sensitive(tmp_path: Path, cmapss_dir: Path) -> None:
    """Test that the fingerprint depends only on file bytes and changes when one changes."""
    for name in ("train_FD001.txt", "test_FD001.txt", "RUL_FD001.txt"):
        shutil.copyfile(cmapss_dir / name, tmp_path / name)
    original = fingerprint(cmapss_dir)
    assert len(original) == 64
    assert fingerprint(cmapss_dir) == original
    assert fingerprint(tmp_path) == original
    with open(tmp_path / "RUL_FD001.txt", "ab") as f:
        f.write(b"\n")
    assert fingerprint(tmp_path) != original


def test_capped_clips_only_above_cap() -> None:
    """Test that capped clips early-life RUL at 125 and leaves the rest unchanged."""
    rul = np.array([300.0, 125.0, 124.0, 0.0])
    np.testing.assert_array_equal(capped(rul), [RUL_CAP, 125.0, 124.0, 0.0])
    np.testing.assert_array_equal(capped(rul, cap=50), [50.0, 50.0, 50.0, 0.0])
    assert rul[0] == 300.0


def test_split_units_by_engine_and_deterministic(tmp_path: Path) -> None:
    """Test that split_units partitions whole engines, repeatably, independent of order."""
    rows = [(u, c) for u in range(1, 21) for c in (1, 2, 3)]
    (tmp_path / "train_FD001.txt").write_text(_table(*rows))
    engines = load_engines(tmp_path)
    train, val = split_units(engines, 0.25, seed=7)
    assert len(val) == 5 and len(train) == 15
    assert {e.unit for e in train}.isdisjoint({e.unit for e in val})
    again = split_units(list(reversed(engines)), 0.25, seed=7)[1]
    assert {e.unit for e in again} == {e.unit for e in val}
    others = [{e.unit for e in split_units(engines, 0.25, seed=s)[1]} for s in range(5)]
    assert len({frozenset(o) for o in others}) > 1


def test_truncated_cuts_replay_the_test_protocol(fd001_train: list[Engine]) -> None:
    """Test each cut is the last window of a prefix, scored with the true RUL, within bounds."""
    engines = fd001_train[:6]
    cuts = truncated_cuts(engines, window=40, cuts=30, seed=3, min_cycles=31, max_rul=150)
    assert cuts.windows.shape == (6 * 30, 40, len(SENSORS)) and len(cuts.targets) == 6 * 30
    by_unit = {engine.unit: engine for engine in engines}
    padded = 0
    for window, truth, tag in zip(cuts.windows, cuts.targets, cuts.tags, strict=True):
        unit, cycle = (int(part.split()[1]) for part in tag.split(", "))
        engine = by_unit[unit]
        assert 31 <= cycle <= len(engine.cycles) and truth == engine.rul[cycle - 1] <= 150
        prefix = engine.values[:cycle].astype(np.float32)  # stored as training windows are
        np.testing.assert_array_equal(window[-min(cycle, 40) :], prefix[-40:])
        if cycle < 40:  # front-padded with the first cycle, as a short test engine is
            padded += 1
            np.testing.assert_array_equal(
                window[: 40 - cycle], np.repeat(prefix[:1], 40 - cycle, 0)
            )
    assert padded > 0 and cuts.targets.max() > RUL_CAP  # uncapped truth, short cuts included
    again = truncated_cuts(engines, window=40, cuts=30, seed=3, min_cycles=31, max_rul=150)
    np.testing.assert_array_equal(again.targets, cuts.targets)
    other = truncated_cuts(engines, window=40, cuts=30, seed=4, min_cycles=31, max_rul=150)
    assert not np.array_equal(other.targets, cuts.targets)


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (_table((1, 1)) + "1 2 0.1 0.2\n", 2, "expected 26 columns, found 4"),
        (_table((1, 1), (1, 2)) + _row(1, 3).replace(" 7.5 ", " abc ", 1) + "\n", 3, "'abc'"),
        (_table((1, 1)) + _row(1, 2).replace(" 7.5 ", " nan ", 1) + "\n", 2, "not a finite number"),
        (_table((1, 1), (1, 2), (1, 4)), 3, "cycle 4 follows cycle 2"),
        (_table((1, 1), (1, 2), (2, 2)), 3, "starts at cycle 2"),
        (_table((1, 1), (2, 1), (1, 2)), 3, "unit 1 follows unit 2"),
        (_table((2, 1)), 1, "first unit is 2"),
        (_table((1, 1)) + _row(1, 2).replace(" 2 ", " 2.5 ", 1) + "\n", 2, "not a positive"),
    ],
    ids=[
        "columns",
        "non-numeric",
        "nan",
        "cycle-gap",
        "cycle-start",
        "unit-order",
        "unit-start",
        "fractional-cycle",
    ],
)
def test_malformed_table_names_file_and_line(
    tmp_path: Path, content: str, line: int, fragment: str
) -> None:
    """Test that each kind of malformed row gives a DataError naming file, line and problem."""
    path = tmp_path / "train_FD001.txt"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_engines(tmp_path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert fragment in str(info.value)


def test_real_layout_variants_accepted(tmp_path: Path) -> None:
    """Test that tabs, CRLF and trailing spaces (all seen in FD001 copies) parse alike."""
    plain = _table((1, 1), (1, 2))
    (tmp_path / "a.txt").write_text(plain)
    (tmp_path / "b.txt").write_bytes(plain.replace(" ", "\t").replace("\n", "  \r\n").encode())
    np.testing.assert_array_equal(read_table(tmp_path / "a.txt"), read_table(tmp_path / "b.txt"))


@pytest.mark.parametrize(("rul_text", "line"), [("10\n20\n30\n", 3), ("10\n", 1)])
def test_rul_file_wrong_count(tmp_path: Path, rul_text: str, line: int) -> None:
    """Test that a RUL file with more or fewer values than test units is rejected."""
    (tmp_path / "test_FD001.txt").write_text(_table((1, 1), (2, 1), (2, 2)))
    rul_path = tmp_path / "RUL_FD001.txt"
    rul_path.write_text(rul_text)
    with pytest.raises(DataError) as info:
        load_engines(tmp_path, split="test")
    assert str(info.value).startswith(f"{rul_path}:{line}: ")
    assert "2 units" in str(info.value)


def test_small_test_split_joins_rul(tmp_path: Path) -> None:
    """Test that test RUL counts up from the file's value towards earlier rows."""
    (tmp_path / "test_FD001.txt").write_text(_table((1, 1), (2, 1), (2, 2)))
    (tmp_path / "RUL_FD001.txt").write_text("10 \n20 \n")
    engines = load_engines(tmp_path, split="test")
    np.testing.assert_array_equal(engines[0].rul, [10.0])
    np.testing.assert_array_equal(engines[1].rul, [21.0, 20.0])


@pytest.mark.parametrize("split", ["train", "test"])
def test_missing_file(tmp_path: Path, split: str) -> None:
    """Test that a missing data file gives a DataError naming that file."""
    with pytest.raises(DataError) as info:
        load_engines(tmp_path, split=split)
    assert str(info.value) == f"{tmp_path / f'{split}_FD001.txt'}: file not found"
    with pytest.raises(DataError, match="file not found"):
        fingerprint(tmp_path)


def test_missing_rul_file(tmp_path: Path) -> None:
    """Test that a test split without its RUL file names the RUL file."""
    (tmp_path / "test_FD001.txt").write_text(_table((1, 1)))
    with pytest.raises(DataError) as info:
        load_engines(tmp_path, split="test")
    assert str(info.value) == f"{tmp_path / 'RUL_FD001.txt'}: file not found"
