"""Parsing sensor payloads from the wire. Anything malformed raises PayloadError with a reason
code (counted per reason by the source) and a readable detail; nothing here can crash the agent.

Forms (docs/agent.md):
- row:    {"ts": 1732440000.25, "s2": 642.1, "s3": 1589.7}
- block:  {"ts": t0, "rate_hz": 25600, "seq": 17, "values": {"ax": [...], "ay": [...]}}
- binary: b"PDMB" header + little-endian float32 samples, interleaved by channel
"""

from __future__ import annotations

import math
import struct
from array import array

import numpy as np
import orjson

from edge_agent.clock import CLOCK
from edge_agent.stream.blocks import SampleBlock

MAX_SAMPLES = 1_000_000  # per message, per channel
MAX_CLOCK_SKEW_S = 300.0  # a timestamp further in the future than this is rejected
# The largest float32 (as printed). Samples reach the model as float32, so a larger magnitude
# would become infinity there; it counts as `non_finite` like NaN, infinity and null.
FLOAT32_LIMIT = 3.4028235e38
BINARY_MAGIC = b"PDMB"
# magic, version, n_channels, n_samples, seq, t0, rate_hz, names length
BINARY_HEADER = struct.Struct("<4sBBIQddH")


class PayloadError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _timestamp(value: object, now: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError("bad_timestamp", f"ts must be a finite number, got {value!r}")
    if value <= 0:
        raise PayloadError("bad_timestamp", f"ts must be positive unix seconds, got {value}")
    if value > now + MAX_CLOCK_SKEW_S:
        raise PayloadError(
            "future_timestamp", f"ts {value} is more than {MAX_CLOCK_SKEW_S:g} s ahead"
        )
    return float(value)


def _number(name: str, value: object) -> float:
    """The one number rule for sample values, rows and blocks alike (a block's fast path in
    `_block_values` gives the same answers): JSON numbers only, so numeric strings and booleans
    are `bad_value`; `null`, NaN, infinity and anything a float32 model input cannot hold are
    `non_finite`; arrays and objects where a number belongs are `bad_shape`."""
    if value is None:
        raise PayloadError("non_finite", f"{name} is null")
    if isinstance(value, list | dict):
        raise PayloadError("bad_shape", f"{name} must be a number, got a nested {_kind(value)}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError("bad_value", f"{name} must be a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        number = math.inf
    if not abs(number) <= FLOAT32_LIMIT:  # also catches NaN
        raise PayloadError("non_finite", f"{name} is {value}, outside the float32 range")
    return number


def _kind(value: object) -> str:
    return {list: "array", dict: "object", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError("bad_rate", f"rate_hz must be a number > 0, got {_kind(value)}")
    if not (math.isfinite(value) and value > 0):
        raise PayloadError("bad_rate", f"rate_hz must be > 0, got {value}")
    return float(value)


def parse_json(stream: str, payload: bytes, now: float | None = None) -> SampleBlock:
    now = CLOCK.latest() if now is None else now  # a clock stepped back rejects nothing good
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("bad_json", str(exc)) from None
    if not isinstance(message, dict):
        raise PayloadError("bad_shape", f"expected a JSON object, got {type(message).__name__}")
    if "ts" not in message:
        raise PayloadError("missing_ts", "no 'ts' field")
    ts = _timestamp(message["ts"], now)
    if "values" in message:
        return _parse_block(stream, message, ts)
    channels = tuple(sorted(k for k in message if k != "ts"))
    if not channels:
        raise PayloadError("no_channels", "a row needs at least one channel besides ts")
    row = np.array([[_number(name, message[name]) for name in channels]])
    return SampleBlock(stream, channels, row, ts, timestamps=np.array([ts]))


def _parse_block(stream: str, message: dict, ts: float) -> SampleBlock:
    rate = _rate(message.get("rate_hz"))
    seq = message.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        raise PayloadError("bad_seq", f"seq must be a non-negative integer, got {seq!r}")
    values = message["values"]
    if not isinstance(values, dict) or not values:
        raise PayloadError("bad_shape", "values must be a non-empty object of channel arrays")
    channels = tuple(sorted(values))
    lengths = set()
    for name in channels:
        series = values[name]
        if not isinstance(series, list):
            raise PayloadError("bad_shape", f"values.{name} must be an array")
        lengths.add(len(series))
    if len(lengths) != 1:
        raise PayloadError("ragged", f"channel arrays differ in length: {sorted(lengths)}")
    n = lengths.pop()
    if n == 0 or n > MAX_SAMPLES:
        raise PayloadError("bad_length", f"{n} samples per channel (allowed 1..{MAX_SAMPLES})")
    data = _block_values([(name, values[name]) for name in channels], n)
    return SampleBlock(stream, channels, data, ts, rate_hz=rate, seq=seq)


def _block_values(columns: list[tuple[str, list]], n: int) -> np.ndarray:
    """(n, channels) float64 under the same rule as `_number`, fast on a hot path (millions of
    samples/s): `array('d')` converts a list in C and refuses strings, null, arrays and objects,
    so only its refusals and booleans (which it takes as 1.0/0.0) need a look per value."""
    out = np.empty((n, len(columns)), dtype=np.float64)
    for i, (name, series) in enumerate(columns):
        try:
            out[:, i] = np.frombuffer(array("d", series), dtype=np.float64)
        except (TypeError, OverflowError):
            _check_series(name, series)  # raises the reason for what array("d") refused
            raise PayloadError("bad_value", f"values.{name} must hold only numbers") from None
    # A boolean can only hide where a value is exactly 0 or 1 (integer 0 and 1 are numbers).
    width = len(columns)
    for flat in np.flatnonzero((out == 0.0) | (out == 1.0)).tolist():
        row, i = divmod(flat, width)
        name, series = columns[i]
        if type(series[row]) is bool:
            _number(f"values.{name}[{row}]", series[row])
    low, high = out.min(), out.max()
    if not (low >= -FLOAT32_LIMIT and high <= FLOAT32_LIMIT):  # NaN fails too
        for name, series in columns:
            _check_series(name, series)
        raise PayloadError("non_finite", "values outside the float32 range")  # not reached
    return out


def _check_series(name: str, series: list) -> None:
    """The slow path: find the first value that breaks the number rule and raise its reason."""
    for k, value in enumerate(series):
        _number(f"values.{name}[{k}]", value)


def encode_binary(block: SampleBlock) -> bytes:
    """The compact form of a regular block (used by simulators, tests and benchmarks)."""
    names = ",".join(block.channels).encode()
    header = BINARY_HEADER.pack(
        BINARY_MAGIC,
        1,
        len(block.channels),
        len(block),
        block.seq or 0,
        block.t0,
        float(block.rate_hz or 0.0),
        len(names),
    )
    return header + names + block.values.astype("<f4").tobytes()


def parse_binary(stream: str, payload: bytes, now: float | None = None) -> SampleBlock:
    now = CLOCK.latest() if now is None else now  # a clock stepped back rejects nothing good
    if len(payload) < BINARY_HEADER.size:
        raise PayloadError("bad_binary", f"{len(payload)} bytes is shorter than the header")
    magic, version, n_channels, n_samples, seq, t0, rate, name_len = BINARY_HEADER.unpack_from(
        payload
    )
    if magic != BINARY_MAGIC or version != 1:
        raise PayloadError("bad_binary", f"unknown magic/version {magic!r}/{version}")
    if n_channels == 0 or not 0 < n_samples <= MAX_SAMPLES:
        raise PayloadError("bad_length", f"{n_channels} channels x {n_samples} samples")
    ts = _timestamp(t0, now)
    if not (math.isfinite(rate) and rate > 0):
        raise PayloadError("bad_rate", f"rate_hz must be > 0, got {rate}")
    names_end = BINARY_HEADER.size + name_len
    try:
        channels = tuple(payload[BINARY_HEADER.size : names_end].decode().split(","))
    except UnicodeDecodeError:
        raise PayloadError("bad_binary", "channel names are not UTF-8") from None
    if len(channels) != n_channels or len(set(channels)) != n_channels:
        raise PayloadError("bad_binary", f"{n_channels} channels but names {channels}")
    expected = names_end + 4 * n_channels * n_samples
    if len(payload) != expected:
        raise PayloadError("bad_length", f"{len(payload)} bytes, expected {expected}")
    data = np.frombuffer(payload, dtype="<f4", offset=names_end).reshape(n_samples, n_channels)
    if not np.all(np.isfinite(data)):  # float32 cannot exceed FLOAT32_LIMIT; only NaN/inf
        raise PayloadError("non_finite", "values hold NaN or infinity")
    return SampleBlock(stream, channels, data.astype(np.float64), ts, rate_hz=rate, seq=seq)


def parse(stream: str, payload: bytes, now: float | None = None) -> SampleBlock:
    if payload[:4] == BINARY_MAGIC:
        return parse_binary(stream, payload, now)
    return parse_json(stream, payload, now)
