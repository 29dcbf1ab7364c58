"""Labelled anomaly windows from a file: NAB's `windows.json` or a CSV of start,end.

`windows.json` maps a recording's file name to a list of [start, end] date-times (NAB's
`labels/combined_windows.json` format); a CSV has a header with `start` and `end` columns and
applies to every recording. A sample is anomalous when start <= its time <= end. Times are read
like the recording's: unix seconds or ISO-8601, else the dataset's `time_format`, date-times
without an offset in the dataset's time zone.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from edge_agent.errors import DataError
from edge_agent.recording import ReadOptions, sniff_delimiter, time_parser


def read_label_windows(path: Path, recording: Path, options: ReadOptions) -> np.ndarray:
    """The labelled windows of `recording` as (k, 2) unix seconds, in file order."""
    if not path.is_file():
        raise DataError(path, "label windows file not found")
    json_file = path.suffix.lower() == ".json"
    pairs = _json_windows(path, recording) if json_file else _csv_windows(path)
    parse_iso = time_parser("start/end", ReadOptions(timezone=options.timezone))
    parse_given = time_parser("start/end", options) if options.time_format else None
    out = np.empty((len(pairs), 2))
    for i, (where, start, end) in enumerate(pairs):
        for j, raw in enumerate((start, end)):
            try:
                out[i, j] = parse_iso(str(raw).strip())
            except ValueError as exc:
                if parse_given is None:
                    raise DataError(path, f"{where}: {exc}") from None
                try:
                    out[i, j] = parse_given(str(raw).strip())
                except ValueError as again:
                    raise DataError(path, f"{where}: {again}") from None
        if out[i, 1] < out[i, 0]:
            raise DataError(path, f"{where}: window ends before it starts ({start} > {end})")
    return out


def inside(times: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """True for each time within at least one [start, end] window (both ends included)."""
    flags = np.zeros(len(times), dtype=bool)
    for start, end in windows:
        flags |= (times >= start) & (times <= end)
    return flags


def _json_windows(path: Path, recording: Path) -> list[tuple[str, object, object]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not readable JSON ({exc})") from None
    if not isinstance(document, dict):
        raise DataError(path, "expected an object keyed by recording file name")
    if recording.name not in document:
        raise DataError(
            path, f"no entry for '{recording.name}'; entries are {sorted(document)[:10]}"
        )
    entries = document[recording.name]
    pairs = []
    for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
        if not (isinstance(entry, list) and len(entry) == 2):
            raise DataError(path, f"'{recording.name}' window {i + 1}: expected [start, end]")
        pairs.append((f"'{recording.name}' window {i + 1}", entry[0], entry[1]))
    return pairs


def _csv_windows(path: Path) -> list[tuple[str, object, object]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=sniff_delimiter(path))
        header = [name.strip() for name in next(reader, [])]
        if "start" not in header or "end" not in header:
            raise DataError(path, f"needs 'start' and 'end' columns; header has {header}", line=1)
        a, b = header.index("start"), header.index("end")
        pairs = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    path, f"{len(row)} fields, header has {len(header)}", line=reader.line_num
                )
            pairs.append((f"line {reader.line_num}", row[a], row[b]))
    return pairs
