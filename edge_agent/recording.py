"""Reading recordings: CSV with a header row, or NPZ with one array per column.

Shared by the agent's replay source, `edge-agent infer` and training's bring-your-own-data path,
so a file that trains is a file that replays. Every bad value is reported with file and line.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from edge_agent.errors import DataError

Columns = dict[str, np.ndarray]


def read_columns(path: Path, numeric: list[str], text: list[str]) -> Columns:
    """Read the named columns from a CSV (header row) or NPZ file, checking every value."""
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.suffix.lower() == ".npz":
        return _read_npz(path, numeric, text)
    return _read_csv(path, numeric, text)


def _read_csv(path: Path, numeric: list[str], text: list[str]) -> Columns:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataError(path, "file is empty")
        header = [name.strip() for name in header]
        missing = [c for c in numeric + text if c not in header]
        if missing:
            raise DataError(path, f"missing column(s) {missing}; header has {header}", line=1)
        index = {name: header.index(name) for name in numeric + text}
        values: dict[str, list] = {name: [] for name in numeric + text}
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
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
    if not values[(numeric + text)[0]]:
        raise DataError(path, "no data rows")
    return {
        name: np.asarray(v, dtype=np.float64 if name in numeric else str)
        for name, v in values.items()
    }


def _read_npz(path: Path, numeric: list[str], text: list[str]) -> Columns:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not a readable NPZ archive ({exc})") from None
    missing = [c for c in numeric + text if c not in archive.files]
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
    if len(lengths) != 1:
        raise DataError(path, f"arrays have different lengths {sorted(lengths)}")
    if 0 in lengths:
        raise DataError(path, "no data rows")
    return out


def column_names(path: Path) -> list[str]:
    """The columns a recording offers (CSV header or NPZ array names)."""
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return list(archive.files)
        except (OSError, ValueError) as exc:
            raise DataError(path, f"not a readable NPZ archive ({exc})") from None
    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise DataError(path, "file is empty")
    return [name.strip() for name in header]
