"""NASA C-MAPSS turbofan run-to-failure data (Saxena et al., PHM 2008), FD001 protocol.

Files are whitespace-separated rows `unit cycle setting1 setting2 setting3 s1 .. s21`
(tabs, spaces and CRLF line ends are all accepted). Every malformed input raises
`DataError` naming the file and line, so a bad copy of the data fails loudly before
training rather than producing a quietly wrong model.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.errors import DataError
from edge_agent.frontend.windowing import last_window, sliding_windows
from training.config import CmapssData
from training.datasets.base import Split, TaskData

ALL_COLUMNS: tuple[str, ...] = (
    "unit",
    "cycle",
    "setting1",
    "setting2",
    "setting3",
    *(f"s{i}" for i in range(1, 22)),
)
# The standard protocol drops s1 s5 s6 s10 s16 s18 s19: constant (or nearly so) in FD001.
SENSORS: tuple[str, ...] = (
    "s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17", "s20", "s21",
)  # fmt: skip
RUL_CAP = 125

_SENSOR_COLUMNS = [ALL_COLUMNS.index(name) for name in SENSORS]
_SPLITS = ("train", "test")


@dataclass(frozen=True, eq=False)
class Engine:
    """One engine's run; arrays are read-only so a shared dataset cannot be edited in place.

    `eq=False` keeps identity equality and hashing: field-wise `==` on arrays is ambiguous.
    """

    unit: int
    cycles: np.ndarray  # (T,) int64
    values: np.ndarray  # (T, len(SENSORS)) float64, columns in SENSORS order
    rul: np.ndarray  # (T,) float64 remaining cycles at each row, uncapped


def _text_lines(path: Path) -> list[str]:
    """Read a text file as lines, turning I/O and encoding failures into `DataError`."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte offset {exc.start})") from None
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror})") from None


def _numbers(path: Path, line: int, columns: Sequence[str], tokens: list[str]) -> list[float]:
    """Parse one row of finite numbers; an error names the first bad cell's column."""
    with contextlib.suppress(ValueError):  # fast path for the usual, well-formed row
        values = [float(tok) for tok in tokens]
        if all(map(math.isfinite, values)):
            return values
    values = []
    for column, tok in zip(columns, tokens, strict=True):
        try:
            value = float(tok)
        except ValueError:
            raise DataError(path, f"column {column}: {tok!r} is not a number", line) from None
        if not math.isfinite(value):
            raise DataError(path, f"column {column}: {tok!r} is not a finite number", line)
        values.append(value)
    return values


def _positive_int(path: Path, line: int, column: str, value: float) -> int:
    """Check that an id column holds a whole number >= 1."""
    if not value.is_integer() or value < 1:
        raise DataError(path, f"column {column}: {value:g} is not a positive integer", line)
    return int(value)


def read_table(path: str | Path) -> np.ndarray:
    """Read and validate one C-MAPSS train/test file as a (rows, 26) float64 array.

    Units must be numbered 1, 2, 3, ... with each unit's rows in one block, and each
    unit's cycles must run 1, 2, 3, ...: the RUL file is matched to test units by
    position, and a gap or shuffle would silently pair engines with wrong labels.
    Blank lines are ignored.
    """
    path = Path(path)
    rows: list[list[float]] = []
    prev_unit = prev_cycle = 0
    for line, text in enumerate(_text_lines(path), start=1):
        tokens = text.split()
        if not tokens:
            continue
        if len(tokens) != len(ALL_COLUMNS):
            raise DataError(path, f"expected {len(ALL_COLUMNS)} columns, found {len(tokens)}", line)
        row = _numbers(path, line, ALL_COLUMNS, tokens)
        unit = _positive_int(path, line, "unit", row[0])
        cycle = _positive_int(path, line, "cycle", row[1])
        if unit == prev_unit:
            if cycle != prev_cycle + 1:
                raise DataError(
                    path, f"unit {unit}: cycle {cycle} follows cycle {prev_cycle}", line
                )
        elif unit != prev_unit + 1:
            if prev_unit == 0:
                raise DataError(path, f"first unit is {unit}, expected 1", line)
            raise DataError(
                path, f"unit {unit} follows unit {prev_unit}, expected {prev_unit + 1}", line
            )
        elif cycle != 1:
            raise DataError(path, f"unit {unit} starts at cycle {cycle}, not 1", line)
        prev_unit, prev_cycle = unit, cycle
        rows.append(row)
    if not rows:
        raise DataError(path, "no data rows")
    return np.asarray(rows, dtype=np.float64)


def _read_rul(path: Path, n_units: int, table_name: str) -> np.ndarray:
    """Read the one-value-per-line true RUL file and check it covers exactly `n_units`."""
    values: list[float] = []
    last_line = 0
    for line, text in enumerate(_text_lines(path), start=1):
        tokens = text.split()
        if not tokens:
            continue
        if len(tokens) != 1:
            raise DataError(path, f"expected 1 value, found {len(tokens)}", line)
        if len(values) == n_units:
            raise DataError(path, f"more values than the {n_units} units in {table_name}", line)
        (value,) = _numbers(path, line, ("RUL",), tokens)
        if not value.is_integer() or value < 0:
            raise DataError(path, f"RUL {value:g} is not a whole number >= 0", line)
        values.append(value)
        last_line = line
    if len(values) < n_units:
        raise DataError(
            path,
            f"file ends after {len(values)} values but {table_name} has {n_units} units",
            last_line or None,
        )
    return np.asarray(values, dtype=np.float64)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def load_engines(
    directory: str | Path, subset: str = "FD001", split: str = "train"
) -> list[Engine]:
    """Load every engine of one split; test engines get RUL from `RUL_<subset>.txt`.

    Train runs end at failure, so the last row's RUL is 0. Test runs are cut short, so
    the last row's RUL is the file's value and earlier rows count up from it.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    directory = Path(directory)
    table_path = directory / f"{split}_{subset}.txt"
    table = read_table(table_path)
    starts = np.flatnonzero(np.diff(table[:, 0])) + 1
    blocks = np.split(table, starts)
    if split == "test":
        end_rul = _read_rul(directory / f"RUL_{subset}.txt", len(blocks), table_path.name)
    else:
        end_rul = np.zeros(len(blocks))
    engines = []
    for block, last_rul in zip(blocks, end_rul, strict=True):
        cycles = block[:, 1].astype(np.int64)
        engines.append(
            Engine(
                unit=int(block[0, 0]),
                cycles=_readonly(cycles),
                values=_readonly(np.ascontiguousarray(block[:, _SENSOR_COLUMNS])),
                rul=_readonly((last_rul + (cycles[-1] - cycles)).astype(np.float64)),
            )
        )
    return engines


def capped(rul: np.ndarray, cap: float = RUL_CAP) -> np.ndarray:
    """Piecewise-linear target: early-life RUL is unknowable from sensors, so clip it."""
    return np.minimum(np.asarray(rul, dtype=np.float64), cap)


def fingerprint(directory: str | Path, subset: str = "FD001") -> str:
    """Hex sha256 identifying the exact data a model was trained and scored on.

    Files are hashed in the order train, test, RUL, each preceded by its name and byte
    length, so moving bytes from one file to another also changes the result.
    """
    digest = hashlib.sha256()
    for name in (f"train_{subset}.txt", f"test_{subset}.txt", f"RUL_{subset}.txt"):
        path = Path(directory) / name
        if not path.is_file():
            raise DataError(path, "file not found")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(path, f"cannot read file ({exc.strerror})") from None
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def split_units(
    engines: Sequence[Engine], val_fraction: float, seed: int
) -> tuple[list[Engine], list[Engine]]:
    """Split whole engines into (train, validation) for model selection.

    Rows of one engine are strongly correlated, so splitting rows would leak. Each unit
    is ranked by sha256(seed, unit) rather than by a numpy RNG: the split then depends
    only on the seed and unit ids, not on input order or numpy version. Both parts keep
    the input order.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    units = [engine.unit for engine in engines]
    if len(set(units)) != len(units):
        raise ValueError("engines must have distinct unit numbers")
    n_val = max(1, round(len(engines) * val_fraction))
    if n_val >= len(engines):
        raise ValueError(f"{len(engines)} engines are too few for val_fraction={val_fraction}")
    ranked = sorted(units, key=lambda u: hashlib.sha256(f"{seed}:{u}".encode()).digest())
    val_units = set(ranked[:n_val])
    train = [e for e in engines if e.unit not in val_units]
    val = [e for e in engines if e.unit in val_units]
    return train, val


def truncated_cuts(
    engines: Sequence[Engine],
    window: int,
    cuts: int = 25,
    seed: int = 2024,
    min_cycles: int = 31,
    max_rul: float = 150.0,
) -> Split:
    """The test protocol replayed on run-to-failure engines, for model selection: each engine is
    cut `cuts` times at random, and the last window of each cut (front-padded like a short test
    engine) is paired with the true, uncapped RUL at the cut.

    A cut keeps at least `min_cycles` cycles (the shortest FD001 test engine has 31) and leaves
    a RUL of at most `max_rul`. Scoring all windows against capped targets instead rewards a
    model for the capped plateau, which the test protocol never scores as such.
    """
    rng = np.random.default_rng(seed)
    windows, truth, tags = [], [], []
    for engine in engines:
        n = len(engine.cycles)
        low = max(min(min_cycles, n), n - int(max_rul))
        for length in rng.integers(low, n + 1, size=cuts):
            windows.append(last_window(engine.values[:length], window))
            truth.append(engine.rul[length - 1])
            tags.append(f"unit {engine.unit}, cycle {length}")
    return Split(np.stack(windows).astype(np.float32), np.asarray(truth), tags)


def _windows(engines: Sequence[Engine], window: int, hop: int, cap: float, path: Path) -> Split:
    chunks, targets = [], []
    for engine in engines:
        if len(engine.cycles) < window:
            raise DataError(
                path,
                f"unit {engine.unit} has {len(engine.cycles)} cycles, fewer than the "
                f"{window}-cycle window",
            )
        found = sliding_windows(engine.values, window, hop)
        chunks.append(found)
        targets.append(capped(engine.rul[window - 1 :: hop][: len(found)], cap))
    return Split(np.concatenate(chunks).astype(np.float32), np.concatenate(targets))


def build(data: CmapssData, window: int, hop: int, cap: float, seed: int) -> TaskData:
    """Standard protocol: capped RUL targets on every training window; each test engine is
    scored once on its last window (shorter engines are front-padded with their first row)
    against the true, uncapped RUL."""
    train_path = data.directory / f"train_{data.subset}.txt"
    engines = load_engines(data.directory, data.subset, "train")
    fit, val = split_units(engines, data.validation_fraction, seed)
    test_engines = load_engines(data.directory, data.subset, "test")
    test = Split(
        np.stack([last_window(e.values, window) for e in test_engines]).astype(np.float32),
        np.array([e.rul[-1] for e in test_engines]),
        [f"unit {e.unit}" for e in test_engines],
    )
    return TaskData(
        name=f"C-MAPSS {data.subset}",
        fingerprint=fingerprint(data.directory, data.subset),
        channels=list(SENSORS),
        sample_rate_hz=None,
        train=_windows(fit, window, hop, cap, train_path),
        val=_windows(val, window, hop, cap, train_path),
        test=test,
        train_rows=np.concatenate([e.values for e in fit]),
        test_description=f"official {data.subset} test set, last window of each of "
        f"{len(test_engines)} engines, true RUL",
    )
