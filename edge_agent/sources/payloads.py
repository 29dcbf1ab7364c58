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
import time

import numpy as np
import orjson

from edge_agent.stream.blocks import SampleBlock

MAX_SAMPLES = 1_000_000  # per message, per channel
MAX_CLOCK_SKEW_S = 300.0  # a timestamp further in the future than this is rejected
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
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError("bad_value", f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise PayloadError("non_finite", f"{name} is {value}")
    return float(value)


def parse_json(stream: str, payload: bytes, now: float | None = None) -> SampleBlock:
    now = time.time() if now is None else now
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
    rate = _number("rate_hz", message.get("rate_hz"))
    if rate <= 0:
        raise PayloadError("bad_rate", f"rate_hz must be > 0, got {rate}")
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
    try:
        array = np.array([values[name] for name in channels], dtype=np.float64).T
    except (TypeError, ValueError):
        raise PayloadError("bad_value", "values must hold only numbers") from None
    if not np.all(np.isfinite(array)):
        raise PayloadError("non_finite", "values hold NaN or infinity")
    return SampleBlock(stream, channels, np.ascontiguousarray(array), ts, rate_hz=rate, seq=seq)


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
    now = time.time() if now is None else now
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
    if not np.all(np.isfinite(data)):
        raise PayloadError("non_finite", "values hold NaN or infinity")
    return SampleBlock(stream, channels, data.astype(np.float64), ts, rate_hz=rate, seq=seq)


def parse(stream: str, payload: bytes, now: float | None = None) -> SampleBlock:
    if payload[:4] == BINARY_MAGIC:
        return parse_binary(stream, payload, now)
    return parse_json(stream, payload, now)
