"""Bring your own data: CSV or NPZ files of multichannel samples with a label, normal-only, or RUL.

Each file is its own recording (`train` and `test` take lists and glob patterns). Inside a file,
a new segment starts where the clock jumps ahead by more than `max_gap` (default 1.5 sample
periods) and where it steps back; shorter irregular steps are bridged. Training and validation
windows also never cross a label change: samples are split chronologically inside each segment of
one label. Test windows are cut like the agent cuts them, at clock breaks only, and take the
label of their last sample; they come from `test` files, from the last part of each segment, or
(with `probation`, NAB's protocol) from each file after its probationary period, which alone
trains and calibrates. Labels come from a label column or from labelled windows in a file
(`label_windows`, training/labels.py).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import DataError
from edge_agent.frontend.windowing import last_window, sliding_windows
from edge_agent.recording import (
    Recording,
    TimeBreaks,
    format_seconds,
    read_columns,
    read_recording,
    sniff_delimiter,
    time_breaks,
    zone,
)
from training.config import TableData
from training.datasets.base import Split, TaskData
from training.labels import inside, read_label_windows
from training.timeline import Timeline

ANOMALY_TAG = "anomaly"  # the tag of samples inside a labelled window


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


def _time_starts(
    recording: Recording, data: TableData, rate: float | None, breaks: _Breaks
) -> np.ndarray:
    """Rows where the clock breaks (a gap above the limit, or a step back): segments start."""
    found = None
    if recording.times is not None and (rate is not None or data.max_gap is not None):
        found = time_breaks(recording.times, rate, data.max_gap)
    starts = found.starts if found is not None else np.empty(0, dtype=np.intp)
    breaks.add(recording, found, len(starts) + 1)
    return starts


def _cut(starts: np.ndarray, lo: int, hi: int) -> list[slice]:
    """[lo, hi) split at the given rows, empty pieces left out."""
    inner = starts[(starts > lo) & (starts < hi)].tolist()
    return [slice(a, b) for a, b in itertools.pairwise([lo, *inner, hi]) if b > a]


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


@dataclass
class _Labelled:
    """One recording with its per-sample tags and the rows where its clock breaks."""

    recording: Recording
    samples: np.ndarray  # (n, channels) in model order
    tags: np.ndarray  # (n,) str: the label column, or inside a labelled window or not
    time_starts: np.ndarray
    stream: int  # the file's place among the dataset's files (the per-stream baseline)

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(frozen=True)
class _Piece:
    """Test rows of one recording: `rows` are windowed, only those from `scored_from` scored."""

    source: _Labelled
    rows: slice
    scored_from: int


def _labelled(
    data: TableData, recording: Recording, rate: float | None, breaks: _Breaks, stream: int
) -> _Labelled:
    if data.label_column is not None:
        tags = recording.columns[data.label_column]
    elif data.label_windows is not None and recording.times is not None:
        windows = read_label_windows(data.label_windows, recording.path, data.read_options())
        tags = np.where(inside(recording.times, windows), ANOMALY_TAG, data.normal_label)
    else:
        tags = np.full(len(recording), data.normal_label)
    columns = [recording.columns[c] for c in data.channels]
    samples = np.stack(columns, axis=1) if columns else np.empty((len(recording), 0))
    return _Labelled(recording, samples, tags, _time_starts(recording, data, rate, breaks), stream)


def _read_all(data: TableData, files: list[Path]) -> list[Recording]:
    text = [data.label_column] if data.label_column else []
    return [_read(data, path, text) for path in files]


def _check_max_gap(data: TableData, rate: float | None, files: list[Path]) -> None:
    if data.max_gap is not None and rate is not None and data.max_gap < 1.0 / rate:
        raise DataError(
            _label(files),
            f"dataset.max_gap {data.max_gap:g} s is shorter than one sample period "
            f"({format_seconds(1.0 / rate)} at {rate:g} Hz): every step would split",
        )


def _probation_cut(data: TableData, n: int) -> int:
    return round(n * data.probation) if data.probation is not None else 0


def build(data: TableData, task: str, window: int, hop: int, rul_cap: float) -> TaskData:
    if task == "rul":
        return _build_rul(data, window, hop, rul_cap)
    train_files = expand_files(data.train, "train")
    test_files = expand_files(data.test, "test") if data.test else None
    if data.label_column is None and task == "classification":
        raise DataError(_label(train_files), "classification needs dataset.label_column")
    train_recs = _read_all(data, train_files)
    rate = _sample_rate(data, train_recs)
    _check_max_gap(data, rate, train_files)
    breaks = _Breaks()
    # Each file is a stream (the per-stream baseline), training files first.
    trains = [_labelled(data, r, rate, breaks, i) for i, r in enumerate(train_recs)]
    tests = [
        _labelled(data, r, rate, breaks, i)
        for i, r in enumerate(_read_all(data, test_files or []), start=len(trains))
    ]
    split_off = test_files is None and data.probation is None
    fractions = (data.validation_fraction, data.test_fraction if split_off else 0.0)

    # (samples, tag, stream, stream row of the first sample) of each consecutive stretch
    parts: dict[str, list[tuple[np.ndarray, str, int, int]]] = {"train": [], "val": []}
    pieces: list[_Piece] = []
    for source in trains:
        tags = source.tags
        changes = np.flatnonzero(tags[1:] != tags[:-1]) + 1
        breaks.labels += len(changes)
        # Training parts: the probationary period (or the whole file), one label per segment.
        end = _probation_cut(data, len(source)) if data.probation is not None else len(source)
        for segment in _cut(np.union1d(source.time_starts, changes), 0, end):
            tag = str(tags[segment.start])
            if task == "anomaly" and tag != data.normal_label:
                # Anomaly models never train on faults: they only serve as test examples.
                if split_off:
                    pieces.append(_Piece(source, segment, segment.start))
                continue
            train, val, test = _chronological(segment, fractions)
            parts["train"].append((source.samples[train], tag, source.stream, train.start))
            parts["val"].append((source.samples[val], tag, source.stream, val.start))
            if split_off and test.stop > test.start:
                pieces.append(_Piece(source, test, test.start))
    if not split_off:
        for source in tests or trains:
            pieces.append(_Piece(source, slice(0, len(source)), _probation_cut(data, len(source))))

    labels = sorted({p[1] for p in parts["train"]}) if task == "classification" else None

    def windows_of(name: str) -> Split:
        chunks, tags, runs, streams, rows = [], [], [], [], []
        for run, (samples, tag, stream, first) in enumerate(parts[name]):
            w = sliding_windows(samples, window, hop)
            chunks.append(w)
            tags += [tag] * len(w)
            runs.append(np.full(len(w), run))
            streams.append(np.full(len(w), stream))
            rows.append(first + window - 1 + hop * np.arange(len(w)))
        if not tags:
            longest = max((len(p[0]) for p in parts[name]), default=0)
            raise _no_window(data, breaks, train_files, name, window, longest)
        return _windowed_split(data, labels, tags, chunks, runs, streams, rows)

    train = windows_of("train")
    test = _test_split(data, pieces, window, hop, labels, breaks, test_files or train_files)
    return TaskData(
        name=train_files[0].name
        if len(train_files) == 1
        else f"{train_files[0].name} and {len(train_files) - 1} more",
        fingerprint=_fingerprint(
            train_files
            + (test_files or [])
            + ([data.label_windows] if data.label_windows is not None else [])
        ),
        channels=list(data.channels),
        sample_rate_hz=rate,
        train=train,
        val=windows_of("val"),
        test=test,
        train_rows=np.concatenate([p[0] for p in parts["train"]]),
        test_description=_test_description(data, train_files, test_files),
        labels=labels,
        notes=breaks.notes,
        streams=[source.samples for source in trains + tests],
    )


def _test_description(
    data: TableData, train_files: list[Path], test_files: list[Path] | None
) -> str:
    scored = _label(test_files or train_files)
    if data.probation is not None:
        return f"{scored} after the first {data.probation:.0%} of each file (probation)"
    return scored if test_files else f"last {data.test_fraction:.0%} of {scored}"


def _targets(data: TableData, tags: list[str], labels: list[str] | None) -> np.ndarray:
    if labels is None:
        return np.array([int(t != data.normal_label) for t in tags])
    return np.array([labels.index(t) for t in tags])


def _windowed_split(
    data: TableData,
    labels: list[str] | None,
    tags: list[str],
    chunks: list[np.ndarray],
    runs: list[np.ndarray],
    streams: list[np.ndarray],
    rows: list[np.ndarray],
    **more: Any,
) -> Split:
    """A split from its pieces' windows (float32, the features' input) and per-window runs,
    streams and last rows; `more`: the test split's fields."""
    return Split(
        np.concatenate(chunks).astype(np.float32),
        _targets(data, tags, labels),
        tags,
        runs=np.concatenate(runs),
        streams=np.concatenate(streams),
        rows=np.concatenate(rows),
        **more,
    )


def _no_window(
    data: TableData, breaks: _Breaks, files: list[Path], split: str, window: int, longest: int
) -> DataError:
    """The one-line error of a split without a complete window, naming why (gaps, steps back)."""
    return DataError(
        _label(files),
        f"no complete {window}-sample window for the {split} split: "
        + breaks.cause(window, longest, split, data.max_gap),
    )


def _test_split(
    data: TableData,
    pieces: list[_Piece],
    window: int,
    hop: int,
    labels: list[str] | None,
    breaks: _Breaks,
    files: list[Path],
) -> Split:
    """Windows of the test pieces, each cut inside the clock's segments (never at a label change)
    and tagged by its last sample's label; evaluated when that sample is scored. Windows before
    it are kept unevaluated: the agent computes them too, and they carry the score smoothing
    into the scored part. Each segment is a run, as the agent's windower restarts at a clock
    break. The pieces are the split's timeline, on which `training.timeline` scores verdicts."""
    chunks, tags, runs, streams, rows, scored, starts, ends, timelines = ([] for _ in range(9))
    offset = run = 0
    for piece in pieces:
        source, piece_rows = piece.source, piece.rows
        for segment in _cut(source.time_starts, piece_rows.start, piece_rows.stop):
            found = sliding_windows(source.samples[segment], window, hop)
            first = segment.start + hop * np.arange(len(found))
            last = first + window - 1
            chunks.append(found)
            tags += source.tags[last].tolist()
            runs.append(np.full(len(found), run))
            streams.append(np.full(len(found), source.stream))
            rows.append(last)
            scored.append(last >= piece.scored_from)
            starts.append(offset + first - piece_rows.start)
            ends.append(offset + last - piece_rows.start)
            run += 1
        timelines.append(_piece_timeline(data, piece))
        offset += piece_rows.stop - piece_rows.start
    evaluated = np.concatenate(scored) if scored else np.zeros(0, dtype=bool)
    if not evaluated.any():
        longest = max((p.rows.stop - p.rows.start for p in pieces), default=0)
        raise _no_window(data, breaks, files, "test", window, longest)
    if labels is not None:
        unknown = sorted(set(tags) - set(labels))
        if unknown:
            raise DataError(_label(files), f"labels {unknown} not in training data")
    return _windowed_split(
        data,
        labels,
        tags,
        chunks,
        runs,
        streams,
        rows,
        scored=None if evaluated.all() else evaluated,
        starts=np.concatenate(starts),
        ends=np.concatenate(ends),
        timeline=Timeline.join(timelines),
    )


def _time_layout(data: TableData, path: Path) -> Callable[[float], str] | None:
    """Prints unix seconds the way the file's time column writes them: with `time_format`, or
    ISO-8601 like its first value (separator; offset or, without one, local to `timezone`);
    None for unix seconds."""
    where = zone(data.timezone)
    layout = data.time_format
    if layout is not None:
        return lambda t: datetime.fromtimestamp(t, where).strftime(layout)
    first = _first_time(data, path)
    try:
        float(first)
        return None
    except ValueError:
        pass
    separator = "T" if "T" in first else " "
    offset = datetime.fromisoformat(first).tzinfo
    if offset is None:
        return lambda t: datetime.fromtimestamp(t, where).replace(tzinfo=None).isoformat(separator)
    return lambda t: datetime.fromtimestamp(t, offset).isoformat(separator)


def _first_time(data: TableData, path: Path) -> str:
    """The time column's first value as text (the file was read already: it exists)."""
    column = data.time_source()
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            first = archive[column][:1]
        return str(np.datetime_as_string(first)[0] if first.dtype.kind == "M" else first[0])
    delimiter = data.delimiter or sniff_delimiter(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = [name.strip() for name in next(reader)]
        row = next(row for row in reader if row)
    return row[header.index(column)].strip()


def _piece_timeline(data: TableData, piece: _Piece) -> Timeline:
    recording, rows = piece.source.recording, piece.rows
    n = rows.stop - rows.start
    formatter = None
    if recording.times is not None:
        times = recording.times[rows]
        formatter = _time_layout(data, recording.path)
    elif data.sample_rate_hz is not None:
        times = (rows.start + np.arange(n)) / data.sample_rate_hz
    else:
        times = (rows.start + np.arange(n)).astype(np.float64)
    return Timeline(
        times=np.asarray(times, dtype=np.float64),
        anomalous=piece.source.tags[rows] != data.normal_label,
        scored=np.arange(rows.start, rows.stop) >= piece.scored_from,
        part=np.zeros(n, dtype=np.intp),
        formatter=formatter,
        real_time=recording.times is not None or data.sample_rate_hz is not None,
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
    data: TableData,
    task: str,
    window: int,
    hop: int,
    *,
    labels: list[str] | None = None,
    unit_column: str = "unit",
    rul_column: str = "rul",
) -> tuple[Split, list[np.ndarray]]:
    """Whole recordings as test windows for `edge-train evaluate`, scored after `probation`,
    with each recording's rows (its stream, for the per-stream baseline; none for rul).

    `data` says how to read them and where the labels are; its `sample_rate_hz` and `max_gap`
    should be the model's, so the clock breaks where the model's windows break."""
    files = expand_files(data.train, "data")
    if task == "rul":
        path = files[0]
        columns = read_columns(path, [*data.channels, unit_column, rul_column], [])
        windows, targets, tags = [], [], []
        for unit in np.unique(columns[unit_column]):
            rows = columns[unit_column] == unit
            samples = np.stack([columns[c][rows] for c in data.channels], axis=1)
            windows.append(last_window(samples, window))
            targets.append(columns[rul_column][rows][-1])
            tags.append(f"unit {unit:g}")
        return Split(np.stack(windows).astype(np.float32), np.array(targets), tags), []
    if data.label_column is None and data.label_windows is None:
        raise DataError(
            files[0], f"{task} evaluation needs a label column (--label-column) or --labels"
        )
    breaks = _Breaks()
    pieces = _whole_files(data, files, breaks)
    split = _test_split(data, pieces, window, hop, labels, breaks, files)
    return split, [piece.source.samples for piece in pieces]


def _whole_files(data: TableData, files: list[Path], breaks: _Breaks) -> list[_Piece]:
    """Each file as one test piece, scored after its probationary period."""
    recordings = _read_all(data, files)
    rate = _sample_rate(data, recordings)
    sources = [_labelled(data, r, rate, breaks, i) for i, r in enumerate(recordings)]
    return [_Piece(s, slice(0, len(s)), _probation_cut(data, len(s))) for s in sources]


def evaluation_timeline(data: TableData) -> Timeline:
    """The timeline `evaluation_split` scores on, without windows (for `edge-train score`)."""
    files = expand_files(data.train, "data")
    if data.label_column is None and data.label_windows is None:
        raise DataError(files[0], "scoring needs a label column (--label-column) or --labels")
    return Timeline.join([_piece_timeline(data, p) for p in _whole_files(data, files, _Breaks())])
