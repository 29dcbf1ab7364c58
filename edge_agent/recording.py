"""Reading recordings: CSV with a header row, or NPZ with one array per column.

Shared by the agent's replay source, `edge-agent infer` and training's bring-your-own-data path,
so a file that trains is a file that replays. Columns are picked by name: the others (a label,
a comment, an export's extra fields) are never parsed. A CSV's delimiter is sniffed from its
header and first lines unless given. A time column holds unix seconds or date-times (ISO-8601,
or a strptime format); naive date-times are read in a configured time zone (UTC by default).
Every bad value is reported with file and line.

`time_breaks` tells where a recording's clock breaks: forward gaps above a limit (`max_gap`, or
1.5 sample periods) and steps that do not go forward. Training splits segments there and the
replay source splits its blocks there, so both cut the same windows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from edge_agent.errors import DataError
from edge_agent.stream.windower import GAP_TOLERANCE

Columns = dict[str, np.ndarray]

DELIMITERS = ",;\t|"  # what sniffing may choose: never ':', '-' or ' ', which date-times hold
SNIFF_LINES = 20  # the header and this many lines in all are looked at


@dataclass(frozen=True)
class ReadOptions:
    """How a recording's text is read; the defaults suit a plain comma CSV of unix seconds."""

    delimiter: str | None = None  # None: sniffed from the header and first lines
    time_format: str | None = None  # strptime format; None: unix seconds or ISO-8601
    timezone: str = "UTC"  # for date-times without an offset


@dataclass(frozen=True)
class Recording:
    """The columns read from one file; `times` in unix seconds when a time column was read."""

    path: Path
    columns: Columns
    times: np.ndarray | None
    lines: np.ndarray | None  # the CSV line of each row (None for NPZ)

    def __len__(self) -> int:
        if self.columns:
            return len(next(iter(self.columns.values())))
        return 0 if self.times is None else len(self.times)

    def where(self, row: int) -> str:
        """Where a row is, for messages: `line 12` in a CSV, `row 10` in an NPZ."""
        return f"line {int(self.lines[row])}" if self.lines is not None else f"row {row}"


def zone(name: str) -> tzinfo:
    """The time zone naive date-times are read in; ValueError names an unknown one."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as 'Europe/Berlin')"
        ) from None


def time_parser(column: str, options: ReadOptions) -> Callable[[str], float]:
    """Text -> unix seconds; raises ValueError with the problem in words."""
    where = zone(options.timezone)
    fmt = options.time_format

    def moment(raw: str) -> float:
        if fmt is not None:
            try:
                value = datetime.strptime(raw, fmt)
            except ValueError:
                raise ValueError(
                    f"column '{column}': {raw!r} does not match time_format {fmt!r}"
                ) from None
        else:
            try:
                number = float(raw)
            except ValueError:
                pass
            else:
                if not math.isfinite(number):
                    raise ValueError(f"column '{column}': {raw!r} is not finite")
                return number
            try:
                value = datetime.fromisoformat(raw)
            except ValueError:
                raise ValueError(
                    f"column '{column}': {raw!r} is neither unix seconds nor an ISO-8601 "
                    "date-time (give time_format for other layouts)"
                ) from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=where)
        return value.timestamp()

    return moment


def read_recording(
    path: Path,
    numeric: Iterable[str],
    text: Iterable[str] = (),
    *,
    time: str | None = None,
    options: ReadOptions | None = None,
) -> Recording:
    """Read the named columns from a CSV (header row) or NPZ file, checking every value.

    numeric: columns of finite numbers (float64); text: columns kept as strings; time: a column
    of unix seconds or date-times, returned as `Recording.times`. Other columns are not read."""
    options = options or ReadOptions()
    numeric, text = list(dict.fromkeys(numeric)), list(dict.fromkeys(text))
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.suffix.lower() == ".npz":
        return _read_npz(path, numeric, text, time, options)
    return _read_csv(path, numeric, text, time, options)


def read_columns(
    path: Path, numeric: list[str], text: list[str], options: ReadOptions | None = None
) -> Columns:
    """Read the named columns from a CSV (header row) or NPZ file, checking every value."""
    return read_recording(path, numeric, text, options=options).columns


def sniff_delimiter(path: Path) -> str:
    """The CSV delimiter csv.Sniffer finds in the header and first lines (among `DELIMITERS`);
    a comma when it cannot tell (a single column, say)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = "".join(line for _, line in zip(range(SNIFF_LINES), handle))
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _header_problem(header: list[str], delimiter: str, sniffed: bool) -> str:
    """A hint when the header looks split at the wrong character."""
    if len(header) == 1:
        for other in DELIMITERS:
            if other != delimiter and other in header[0]:
                how = "sniffed" if sniffed else "given"
                return f" (delimiter {delimiter!r} {how}; set delimiter = {other!r}?)"
    return ""


def _read_csv(
    path: Path, numeric: list[str], text: list[str], time: str | None, options: ReadOptions
) -> Recording:
    delimiter = options.delimiter or sniff_delimiter(path)
    wanted = [*numeric, *text, *([time] if time else [])]
    parse_time = time_parser(time, options) if time else None
    values: dict[str, list] = {name: [] for name in [*numeric, *text]}
    stamps: list[float] = []  # apart from `values`: the time column may also be a channel
    lines: list[int] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DataError(path, "file is empty")
        header = [name.strip() for name in header]
        missing = [c for c in wanted if c not in header]
        if missing:
            hint = _header_problem(header, delimiter, options.delimiter is None)
            raise DataError(path, f"missing column(s) {missing}; header has {header}{hint}", line=1)
        index = {name: header.index(name) for name in wanted}
        for row in reader:
            if not row:
                continue
            line_no = reader.line_num
            if len(row) != len(header):
                raise DataError(path, f"{len(row)} fields, header has {len(header)}", line=line_no)
            for name in numeric:
                raw = row[index[name]].strip()
                try:
                    number = float(raw)
                except ValueError:
                    raise DataError(
                        path, f"column '{name}': {raw!r} is not a number", line=line_no
                    ) from None
                if not math.isfinite(number):
                    raise DataError(path, f"column '{name}': {raw!r} is not finite", line=line_no)
                values[name].append(number)
            for name in text:
                values[name].append(row[index[name]].strip())
            if parse_time is not None:
                try:
                    stamps.append(parse_time(row[index[time]].strip()))  # type: ignore[index]
                except ValueError as exc:
                    raise DataError(path, str(exc), line=line_no) from None
            lines.append(line_no)
    if not lines:
        raise DataError(path, "no data rows")
    columns = {
        name: np.asarray(values[name], dtype=np.float64 if name in numeric else str)
        for name in [*numeric, *text]
    }
    times = np.asarray(stamps, dtype=np.float64) if time else None
    return Recording(path, columns, times, np.asarray(lines))


def _read_npz(
    path: Path, numeric: list[str], text: list[str], time: str | None, options: ReadOptions
) -> Recording:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not a readable NPZ archive ({exc})") from None
    wanted = [*numeric, *text, *([time] if time else [])]
    missing = [c for c in wanted if c not in archive.files]
    if missing:
        raise DataError(path, f"missing array(s) {missing}; archive has {archive.files}")
    out: Columns = {}
    lengths = set()
    for name in numeric:
        array = archive[name]
        if array.ndim != 1 or array.dtype.kind not in "iuf":
            raise DataError(
                path, f"array '{name}' must be 1-D numeric, got {array.dtype}{array.shape}"
            )
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise DataError(path, f"array '{name}' has a non-finite value at index {bad[0]}")
        out[name] = array.astype(np.float64)
        lengths.add(array.shape[0])
    for name in text:
        out[name] = archive[name].astype(str)
        lengths.add(out[name].shape[0])
    times = None
    if time:
        array = archive[time]
        if array.ndim != 1:
            raise DataError(path, f"array '{time}' must be 1-D, got shape {array.shape}")
        if array.dtype.kind in "iuf":
            bad = np.flatnonzero(~np.isfinite(array))
            if bad.size:
                raise DataError(path, f"array '{time}' has a non-finite value at index {bad[0]}")
            times = array.astype(np.float64)
        else:  # date-times as text or datetime64: read like a CSV's
            parse = time_parser(time, options)
            texts = np.datetime_as_string(array) if array.dtype.kind == "M" else array.astype(str)
            times = np.empty(len(texts))
            for i, raw in enumerate(texts.tolist()):
                try:
                    times[i] = parse(raw.strip())
                except ValueError as exc:
                    raise DataError(path, f"{exc} (index {i})") from None
        lengths.add(times.shape[0])
    if len(lengths) != 1:
        raise DataError(path, f"arrays have different lengths {sorted(lengths)}")
    if 0 in lengths:
        raise DataError(path, "no data rows")
    return Recording(path, out, times, None)


def column_names(path: Path, delimiter: str | None = None) -> list[str]:
    """The columns a recording offers (CSV header, delimiter sniffed unless given, or NPZ
    array names)."""
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return list(archive.files)
        except (OSError, ValueError) as exc:
            raise DataError(path, f"not a readable NPZ archive ({exc})") from None
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle, delimiter=delimiter or sniff_delimiter(path)), None)
    if not header:
        raise DataError(path, "file is empty")
    return [name.strip() for name in header]


# ---- where the clock breaks -----------------------------------------------------------------


@dataclass(frozen=True)
class TimeBreaks:
    """Where a recording's clock breaks, and what was bridged.

    A row is a forward gap when its step from the row before is above `limit_s`, and a step back
    when its time is not after that row's (the clock was set back, or stood still). Both start a
    new segment: windows never straddle them."""

    gaps: np.ndarray  # row indices that start after a forward gap
    backs: np.ndarray  # row indices that start after a step back
    limit_s: float | None  # the longest step that is not a gap; None: forward steps never break
    max_gap: bool  # the limit is the configured max_gap (not 1.5 sample periods)
    largest_gap_s: float
    largest_back_s: float
    bridged: int  # steps longer than 1.5 sample periods kept inside a segment (<= max_gap)

    @property
    def starts(self) -> np.ndarray:
        """Row indices where a new segment starts (not 0), ascending."""
        return np.union1d(self.gaps, self.backs)

    def limit_text(self) -> str:
        assert self.limit_s is not None
        if self.max_gap:
            return f"max_gap {format_seconds(self.limit_s)}"
        return f"{1 + GAP_TOLERANCE:g} sample periods"

    def summary(self) -> str:
        """One phrase for logs and reports, e.g. `3 gaps above max_gap 10 s split (largest
        4 min), 1 step back split (55 min), 120 longer steps bridged`."""
        parts = []
        if self.limit_s is not None:
            gaps = len(self.gaps)
            largest = f" (largest {format_seconds(self.largest_gap_s)})" if gaps else ""
            parts.append(f"{_count(gaps, 'gap')} above {self.limit_text()} split{largest}")
        backs = len(self.backs)
        back = f" (largest {format_seconds(self.largest_back_s)})" if backs else ""
        parts.append(f"{_count(backs, 'step')} back split{back}")
        if self.max_gap:
            parts.append(f"{_count(self.bridged, 'longer step')} bridged")
        return ", ".join(parts)


def time_breaks(times: np.ndarray, rate_hz: float | None, max_gap_s: float | None) -> TimeBreaks:
    """Find the gaps and steps back of `times` (unix seconds, file order).

    The gap limit is `max_gap_s` when given, else 1.5 sample periods at `rate_hz`; with neither,
    only steps back break (rows without a rate, such as one per flight cycle)."""
    steps = np.diff(np.asarray(times, dtype=np.float64))
    nominal = (1 + GAP_TOLERANCE) / rate_hz if rate_hz else None
    limit = max_gap_s if max_gap_s is not None else nominal
    backs = np.flatnonzero(steps <= 0) + 1
    gaps = np.flatnonzero(steps > limit) + 1 if limit is not None else np.empty(0, dtype=np.intp)
    bridged = 0
    if max_gap_s is not None and nominal is not None:
        bridged = int(np.count_nonzero((steps > nominal) & (steps <= max_gap_s)))
    return TimeBreaks(
        gaps=gaps,
        backs=backs,
        limit_s=limit,
        max_gap=max_gap_s is not None,
        largest_gap_s=float(steps[gaps - 1].max()) if gaps.size else 0.0,
        largest_back_s=float(-steps[backs - 1].min()) if backs.size else 0.0,
        bridged=bridged,
    )


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def format_seconds(value: float) -> str:
    """A duration for people: `250 ms`, `2 s`, `55 min`, `3.5 h`, `7 d`."""
    value = abs(value)
    if value < 1:
        return f"{value * 1000:.3g} ms"
    if value < 120:
        return f"{value:.3g} s"
    if value < 7200:
        return f"{value / 60:.3g} min"
    if value < 172800:
        return f"{value / 3600:.3g} h"
    return f"{value / 86400:.3g} d"
