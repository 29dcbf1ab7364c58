"""Bring your own data: CSV or NPZ files of multichannel samples with a label, normal-only, or RUL.

Each file is its own recording (`train` and `test` take lists and glob patterns). Inside a file,
a new segment starts where the label changes, where the clock jumps ahead by more than
`max_gap` (default 1.5 sample periods) and where it steps back; shorter irregular steps are
bridged. Samples are split chronologically inside each segment, and each part is windowed on its
own, so no window straddles a gap, a file, or train, validation and test.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_agent.errors import DataError
from edge_agent.frontend.windowing import last_window, sliding_windows
from edge_agent.recording import (
    Recording,
    TimeBreaks,
    format_seconds,
    read_columns,
    read_recording,
    time_breaks,
)
from training.config import TableData
from training.datasets.base import Split, TaskData


def expand_files(entries: list[Path], key: str) -> list[Path]:
    """Files and glob patterns -> files, patterns expanded in sorted order, each file once."""
    files: list[Path] = []
    for entry in entries:
        if any(char in str(entry) for char in "*?["):
            found = sorted(Path(p) for p in glob.glob(str(entry)) if Path(p).is_file())
            if not found:
                raise DataError(entry, f"dataset.{key}: no file matches this pattern")
            files += found
        else:
            files.append(entry)
    return list(dict.fromkeys(files))


def _label(files: list[Path]) -> str:
    """How a set of files is named in messages."""
    if len(files) == 1:
        return str(files[0])
    return f"{files[0]} and {len(files) - 1} more file{'s' if len(files) > 2 else ''}"


def _read(data: TableData, path: Path, text: list[str]) -> Recording:
    return read_recording(
        path, data.channels, text, time=data.time_source(), options=data.read_options()
    )


def _sample_rate(data: TableData, recordings: list[Recording]) -> float | None:
    if data.sample_rate_hz is not None or data.time_source() is None:
        return data.sample_rate_hz
    steps = np.concatenate([np.diff(r.times) for r in recordings if r.times is not None])
    forward = steps[steps > 0]
    where = _label([r.path for r in recordings])
    if forward.size == 0 or forward.size < steps.size / 2:
        raise DataError(
            where,
            f"column '{data.time_column}' must increase to infer the sample rate "
            f"({steps.size - forward.size} of {steps.size} steps do not); for timestamps "
            "coarser than the sample period use time = 'index' with sample_rate_hz",
        )
    # Mean of the regular steps (gaps excluded), not the median: timestamps rounded to the
    # millisecond at unix-epoch magnitude make single steps imprecise but their mean exact.
    regular = forward[forward < 1.5 * np.median(forward)]
    return float(f"{1.0 / regular.mean():.6g}")


@dataclass
class _Breaks:
    """What splitting the files found, for notes and for the no-window error."""

    gaps: int = 0
    largest_gap_s: float = 0.0
    backs: int = 0
    bridged: int = 0
    labels: int = 0  # label changes
    limit: str | None = None  # "max_gap 10 s" or "1.5 sample periods"
    notes: list[str] = field(default_factory=list)

    def add(self, recording: Recording, found: TimeBreaks | None, segments: int) -> None:
        if found is None:
            return
        self.gaps += len(found.gaps)
        self.backs += len(found.backs)
        self.bridged += found.bridged
        self.largest_gap_s = max(self.largest_gap_s, found.largest_gap_s)
        if found.limit_s is not None:
            self.limit = found.limit_text()
        if len(found.gaps) or len(found.backs) or found.bridged:
            first_back = (
                f"; first step back at {recording.where(int(found.backs[0]))}"
                if len(found.backs)
                else ""
            )
            self.notes.append(
                f"{recording.path.name}: {len(recording)} rows in {segments} segments; "
                f"{found.summary()}{first_back}"
            )

    def cause(self, window: int, longest: int, split: str, max_gap: float | None) -> str:
        """Why no window formed: the gaps, the longest stretch and the window, in one line."""
        parts = [f"its longest unbroken stretch is {longest} samples (a window needs {window})"]
        if self.limit is not None:
            largest = f" (largest {format_seconds(self.largest_gap_s)})" if self.gaps else ""
            parts.append(f"the data has {self.gaps} gaps above {self.limit}{largest}")
        parts.append(f"{self.backs} steps back")
        if self.labels:
            parts.append(f"{self.labels} label changes")
        if self.gaps and max_gap is None:
            hint = "set dataset.max_gap (seconds) to bridge shorter gaps, or shorten input.window"
        elif split != "train" and not self.gaps and not self.backs:
            hint = "the held-out fractions of each segment are shorter than a window"
        else:
            hint = "raise dataset.max_gap or shorten input.window"
        return "; ".join(parts) + f": {hint}"


def _segments(
    recording: Recording,
    data: TableData,
    rate: float | None,
    key: str | None,
    breaks: _Breaks,
) -> list[slice]:
    """Contiguous runs with one value of `key` and no time gap above the limit or step back."""
    n = len(recording)
    starts = np.zeros(n, dtype=bool)
    if key is not None:
        changes = recording.columns[key][1:] != recording.columns[key][:-1]
        starts[1:] |= changes
        breaks.labels += int(np.count_nonzero(changes))
    found = None
    if recording.times is not None and (rate is not None or data.max_gap is not None):
        found = time_breaks(recording.times, rate, data.max_gap)
        starts[found.starts] = True
    bounds = [0, *np.flatnonzero(starts).tolist(), n]
    segments = [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    breaks.add(recording, found, len(segments))
    return segments


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
    train_files = expand_files(data.train, "train")
    test_files = expand_files(data.test, "test") if data.test else None
    if data.label_column is None and task == "classification":
        raise DataError(_label(train_files), "classification needs dataset.label_column")
    text = [data.label_column] if data.label_column else []
    train_recs = [_read(data, path, text) for path in train_files]
    rate = _sample_rate(data, train_recs)
    if data.max_gap is not None and rate is not None and data.max_gap < 1.0 / rate:
        raise DataError(
            _label(train_files),
            f"dataset.max_gap {data.max_gap:g} s is shorter than one sample period "
            f"({format_seconds(1.0 / rate)} at {rate:g} Hz): every step would split",
        )
    test_recs = [_read(data, path, text) for path in test_files] if test_files else None
    split_off_test = test_recs is None
    fractions = (data.validation_fraction, data.test_fraction if split_off_test else 0.0)

    def tag_of(recording: Recording, segment: slice) -> str:
        if not data.label_column:
            return "normal"
        return str(recording.columns[data.label_column][segment.start])

    def samples_of(recording: Recording, segment: slice) -> np.ndarray:
        return np.stack([recording.columns[c][segment] for c in data.channels], axis=1)

    breaks = _Breaks()
    # (samples, tag, stream, stream row of the first sample): each file is a stream.
    parts: dict[str, list[tuple[np.ndarray, str, int, int]]] = {"train": [], "val": [], "test": []}
    recordings = train_recs + (test_recs or [])
    for stream, recording in enumerate(train_recs):
        for segment in _segments(recording, data, rate, data.label_column, breaks):
            tag = tag_of(recording, segment)
            samples = samples_of(recording, segment)
            if task == "anomaly" and tag != data.normal_label:
                # Anomaly models never train on faults: they only serve as test examples.
                if split_off_test:
                    parts["test"].append((samples, tag, stream, segment.start))
                continue
            for name, part in zip(
                ("train", "val", "test"), _chronological(slice(0, samples.shape[0]), fractions)
            ):
                parts[name].append((samples[part], tag, stream, segment.start + part.start))
    for stream, recording in enumerate(test_recs or [], start=len(train_recs)):
        for segment in _segments(recording, data, rate, data.label_column, breaks):
            parts["test"].append(
                (samples_of(recording, segment), tag_of(recording, segment), stream, segment.start)
            )

    labels = sorted({p[1] for p in parts["train"]}) if task == "classification" else None

    def windows_of(name: str) -> Split:
        chunks, tags, runs, streams, ends = [], [], [], [], []
        for run, (samples, tag, stream, first) in enumerate(parts[name]):
            w = sliding_windows(samples, window, hop)
            chunks.append(w)
            tags += [tag] * len(w)
            runs.append(np.full(len(w), run))
            streams.append(np.full(len(w), stream))
            ends.append(first + window - 1 + hop * np.arange(len(w)))
        files = test_files if name == "test" and test_files else train_files
        if not tags:
            longest = max((len(p[0]) for p in parts[name]), default=0)
            raise DataError(
                _label(files),
                f"no complete {window}-sample window for the {name} split: "
                + breaks.cause(window, longest, name, data.max_gap),
            )
        if labels is not None:
            unknown = sorted(set(tags) - set(labels))
            if unknown:
                raise DataError(_label(files), f"labels {unknown} not in training data")
            targets = np.array([labels.index(t) for t in tags])
        else:
            targets = np.array([int(t != data.normal_label) for t in tags])
        return Split(
            np.concatenate(chunks).astype(np.float32),
            targets,
            tags,
            runs=np.concatenate(runs),
            streams=np.concatenate(streams),
            ends=np.concatenate(ends),
        )

    train = windows_of("train")
    return TaskData(
        name=train_files[0].name
        if len(train_files) == 1
        else f"{train_files[0].name} and {len(train_files) - 1} more",
        fingerprint=_fingerprint(train_files + (test_files or [])),
        channels=list(data.channels),
        sample_rate_hz=rate,
        train=train,
        val=windows_of("val"),
        test=windows_of("test"),
        train_rows=np.concatenate([p[0] for p in parts["train"]]),
        test_description=_label(test_files)
        if test_files
        else f"last {data.test_fraction:.0%} of {_label(train_files)}",
        labels=labels,
        notes=breaks.notes,
        streams=[samples_of(r, slice(0, len(r))) for r in recordings],
    )


def _build_rul(data: TableData, window: int, hop: int, rul_cap: float) -> TaskData:
    train_files = expand_files(data.train, "train")
    needed = {"unit_column": data.unit_column, "rul_column": data.rul_column}
    missing = [key for key, value in needed.items() if value is None]
    if missing:
        raise DataError(_label(train_files), f"rul needs dataset.{' and dataset.'.join(missing)}")
    if data.test is None:
        raise DataError(
            _label(train_files), "rul needs a dataset.test file of units cut before failure"
        )
    test_files = expand_files(data.test, "test")
    numeric = [*data.channels, data.unit_column, data.rul_column]
    options = data.read_options()

    def units(files: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every unit of every file (the same unit number in two files is two units)."""
        out = []
        for path in files:
            columns = read_columns(path, numeric, [], options)  # type: ignore[arg-type]
            for unit in np.unique(columns[data.unit_column]):
                rows = columns[data.unit_column] == unit
                samples = np.stack([columns[c][rows] for c in data.channels], axis=1)
                out.append((samples, columns[data.rul_column][rows]))  # type: ignore[index]
        return out

    train_units = units(train_files)
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
            raise DataError(_label(train_files), f"no unit has {window} rows for a complete window")
        return Split(np.concatenate(chunks).astype(np.float32), np.concatenate(targets))

    train_sel = [u for u, v in zip(train_units, is_val) if not v]
    test_units = units(test_files)
    test = Split(
        np.stack([last_window(s, window) for s, _ in test_units]).astype(np.float32),
        np.array([rul[-1] for _, rul in test_units]),
    )
    return TaskData(
        name=train_files[0].name,
        fingerprint=_fingerprint(train_files + test_files),
        channels=list(data.channels),
        sample_rate_hz=None,
        train=windowed(train_sel),
        val=windowed([u for u, v in zip(train_units, is_val) if v]),
        test=test,
        train_rows=np.concatenate([s for s, _ in train_sel]),
        test_description=f"last window of each unit in {_label(test_files)}",
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
    recording = read_recording(path, list(channels), [label_column])
    chunks, tags = [], []
    config = TableData(
        kind="table", train=path, channels=channels, time_column=None, label_column=label_column
    )
    for segment in _segments(recording, config, None, label_column, _Breaks()):
        samples = np.stack([recording.columns[c][segment] for c in channels], axis=1)
        found = sliding_windows(samples, window, hop)
        chunks.append(found)
        tags += [str(recording.columns[label_column][segment.start])] * len(found)
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
