"""Bring your own data: CSV or NPZ files of multichannel samples with a label, normal-only, or RUL.

Samples are split chronologically inside each contiguous segment (same label, no time gap), and
each part is windowed on its own, so no window straddles train, validation and test.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np

from edge_agent.errors import DataError
from edge_agent.frontend.windowing import last_window, sliding_windows
from edge_agent.recording import Columns, read_columns
from training.config import TableData
from training.datasets.base import Split, TaskData


def _sample_rate(data: TableData, columns: Columns, path: Path) -> float | None:
    if data.sample_rate_hz is not None or data.time_column is None:
        return data.sample_rate_hz
    steps = np.diff(columns[data.time_column])
    if steps.size == 0 or np.median(steps) <= 0:
        raise DataError(path, f"column '{data.time_column}' must increase to infer the sample rate")
    # Mean of the regular steps (gaps excluded), not the median: timestamps rounded to the
    # millisecond at unix-epoch magnitude make single steps imprecise but their mean exact.
    regular = steps[(steps > 0) & (steps < 1.5 * np.median(steps))]
    return float(f"{1.0 / regular.mean():.6g}")


def _segments(
    columns: Columns, data: TableData, rate: float | None, key: str | None
) -> list[slice]:
    """Contiguous runs with one value of `key` and no time gap longer than 1.5 sample periods."""
    n = len(columns[data.channels[0]])
    breaks = np.zeros(n, dtype=bool)
    if key is not None:
        breaks[1:] |= columns[key][1:] != columns[key][:-1]
    if data.time_column is not None and rate is not None:
        breaks[1:] |= np.diff(columns[data.time_column]) > 1.5 / rate
    starts = [0, *np.flatnonzero(breaks).tolist(), n]
    return [slice(a, b) for a, b in itertools.pairwise(starts) if b > a]


def _chronological(segment: slice, fractions: tuple[float, float]) -> tuple[slice, slice, slice]:
    length = segment.stop - segment.start
    a = segment.start + round(length * (1 - sum(fractions)))
    b = a + round(length * fractions[0])
    return slice(segment.start, a), slice(a, b), slice(b, segment.stop)


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build(data: TableData, task: str, window: int, hop: int, rul_cap: float) -> TaskData:
    if task == "rul":
        return _build_rul(data, window, hop, rul_cap)
    if data.label_column is None and task == "classification":
        raise DataError(data.train, "classification needs dataset.label_column")
    text = [data.label_column] if data.label_column else []
    numeric = list(data.channels) + ([data.time_column] if data.time_column else [])
    train_cols = read_columns(data.train, numeric, text)
    rate = _sample_rate(data, train_cols, data.train)
    test_cols = read_columns(data.test, numeric, text) if data.test else None
    split_off_test = test_cols is None
    fractions = (data.validation_fraction, data.test_fraction if split_off_test else 0.0)

    parts: dict[str, list[tuple[np.ndarray, str]]] = {"train": [], "val": [], "test": []}
    for segment in _segments(train_cols, data, rate, data.label_column):
        tag = str(train_cols[data.label_column][segment.start]) if data.label_column else "normal"
        samples = np.stack([train_cols[c][segment] for c in data.channels], axis=1)
        if task == "anomaly" and tag != data.normal_label:
            # Anomaly models never train on faults: they only serve as test examples.
            if split_off_test:
                parts["test"].append((samples, tag))
            continue
        for name, part in zip(
            ("train", "val", "test"), _chronological(slice(0, samples.shape[0]), fractions)
        ):
            parts[name].append((samples[part], tag))
    if test_cols is not None:
        for segment in _segments(test_cols, data, rate, data.label_column):
            tag = (
                str(test_cols[data.label_column][segment.start]) if data.label_column else "normal"
            )
            parts["test"].append((np.stack([test_cols[c][segment] for c in data.channels], 1), tag))

    labels = sorted({tag for _, tag in parts["train"]}) if task == "classification" else None

    def windows_of(name: str) -> Split:
        chunks, tags = [], []
        for samples, tag in parts[name]:
            w = sliding_windows(samples, window, hop)
            chunks.append(w)
            tags += [tag] * len(w)
        if not tags:
            raise DataError(data.train, f"no complete {window}-sample window for the {name} split")
        if labels is not None:
            unknown = sorted(set(tags) - set(labels))
            if unknown:
                raise DataError(data.test or data.train, f"labels {unknown} not in training data")
            targets = np.array([labels.index(t) for t in tags])
        else:
            targets = np.array([int(t != data.normal_label) for t in tags])
        return Split(np.concatenate(chunks).astype(np.float32), targets, tags)

    train = windows_of("train")
    return TaskData(
        name=data.train.name,
        fingerprint=_fingerprint([p for p in (data.train, data.test) if p is not None]),
        channels=list(data.channels),
        sample_rate_hz=rate,
        train=train,
        val=windows_of("val"),
        test=windows_of("test"),
        train_rows=np.concatenate([s for s, _ in parts["train"]]),
        test_description=str(data.test)
        if data.test
        else f"last {data.test_fraction:.0%} of {data.train}",
        labels=labels,
    )


def _build_rul(data: TableData, window: int, hop: int, rul_cap: float) -> TaskData:
    needed = {"unit_column": data.unit_column, "rul_column": data.rul_column}
    missing = [key for key, value in needed.items() if value is None]
    if missing:
        raise DataError(data.train, f"rul needs dataset.{' and dataset.'.join(missing)}")
    if data.test is None:
        raise DataError(data.train, "rul needs a dataset.test file of units cut before failure")
    numeric = [*data.channels, data.unit_column, data.rul_column]  # type: ignore[list-item]
    train_cols = read_columns(data.train, numeric, [])
    test_cols = read_columns(data.test, numeric, [])

    def units(columns: Columns, path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for unit in np.unique(columns[data.unit_column]):
            rows = columns[data.unit_column] == unit
            samples = np.stack([columns[c][rows] for c in data.channels], axis=1)
            out.append((samples, columns[data.rul_column][rows]))
        return out

    train_units = units(train_cols, data.train)
    rng = np.random.default_rng(0)
    is_val = rng.random(len(train_units)) < data.validation_fraction
    if is_val.all() or not is_val.any():
        is_val = np.arange(len(train_units)) == 0

    def windowed(selected: list) -> Split:
        chunks, targets = [], []
        for samples, rul in selected:
            w = sliding_windows(samples, window, hop)
            chunks.append(w)
            targets.append(np.minimum(rul[window - 1 :: hop][: len(w)], rul_cap))
        if not chunks or sum(len(c) for c in chunks) == 0:
            raise DataError(data.train, f"no unit has {window} rows for a complete window")
        return Split(np.concatenate(chunks).astype(np.float32), np.concatenate(targets))

    train_sel = [u for u, v in zip(train_units, is_val) if not v]
    test_units = units(test_cols, data.test)
    test = Split(
        np.stack([last_window(s, window) for s, _ in test_units]).astype(np.float32),
        np.array([rul[-1] for _, rul in test_units]),
    )
    return TaskData(
        name=data.train.name,
        fingerprint=_fingerprint([data.train, data.test]),
        channels=list(data.channels),
        sample_rate_hz=None,
        train=windowed(train_sel),
        val=windowed([u for u, v in zip(train_units, is_val) if v]),
        test=test,
        train_rows=np.concatenate([s for s, _ in train_sel]),
        test_description=f"last window of each unit in {data.test}",
    )


def evaluation_split(
    path: Path,
    task: str,
    channels: list[str],
    window: int,
    hop: int,
    *,
    labels: list[str] | None = None,
    label_column: str | None = None,
    normal_label: str = "normal",
    unit_column: str = "unit",
    rul_column: str = "rul",
) -> Split:
    """A whole recording as test windows for `edge-train evaluate`, targets from its columns."""
    if task == "rul":
        columns = read_columns(path, [*channels, unit_column, rul_column], [])
        windows, targets, tags = [], [], []
        for unit in np.unique(columns[unit_column]):
            rows = columns[unit_column] == unit
            samples = np.stack([columns[c][rows] for c in channels], axis=1)
            windows.append(last_window(samples, window))
            targets.append(columns[rul_column][rows][-1])
            tags.append(f"unit {unit:g}")
        return Split(np.stack(windows).astype(np.float32), np.array(targets), tags)
    if label_column is None:
        raise DataError(path, f"{task} evaluation needs a label column (--label-column)")
    columns = read_columns(path, list(channels), [label_column])
    chunks, tags = [], []
    config = TableData(
        kind="table", train=path, channels=channels, time_column=None, label_column=label_column
    )
    for segment in _segments(columns, config, None, label_column):
        samples = np.stack([columns[c][segment] for c in channels], axis=1)
        found = sliding_windows(samples, window, hop)
        chunks.append(found)
        tags += [str(columns[label_column][segment.start])] * len(found)
    if not tags:
        raise DataError(path, f"no complete {window}-sample window in the file")
    if task == "classification":
        unknown = sorted(set(tags) - set(labels or []))
        if unknown:
            raise DataError(path, f"labels {unknown} are not among the model's labels {labels}")
        targets = np.array([(labels or []).index(t) for t in tags])
    else:
        targets = np.array([int(t != normal_label) for t in tags])
    return Split(np.concatenate(chunks).astype(np.float32), targets, tags)
