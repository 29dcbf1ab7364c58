"""Sensor payload parsing: every documented form, and no input of any shape can crash it."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.sources.payloads import PayloadError, encode_binary, parse
from edge_agent.stream.blocks import SampleBlock

NOW = 1_800_000_000.0


def test_row_form() -> None:
    """Test that a sample row becomes a one-row block with its timestamp."""
    block = parse("p", b'{"ts": 1732440000.25, "s3": 1589.7, "s2": 642.1}', NOW)
    assert block.channels == ("s2", "s3")
    np.testing.assert_array_equal(block.values, [[642.1, 1589.7]])
    assert block.timestamps is not None and block.timestamps[0] == 1732440000.25


def test_block_form() -> None:
    """Test that a block keeps rate, seq and per-channel arrays as columns."""
    payload = {
        "ts": 1732440000.0,
        "rate_hz": 25600,
        "seq": 17,
        "values": {"ay": [3, 4], "ax": [1, 2]},
    }
    block = parse("p", orjson.dumps(payload), NOW)
    assert (block.channels, block.rate_hz, block.seq, block.t0) == (
        ("ax", "ay"),
        25600,
        17,
        1732440000.0,
    )
    np.testing.assert_array_equal(block.values, [[1, 3], [2, 4]])


def test_binary_round_trip() -> None:
    """Test that the binary form carries channels, rate, seq and float32 values."""
    values = np.arange(12, dtype=np.float64).reshape(4, 3) / 8
    original = SampleBlock("p", ("ax", "ay", "az"), values, 1732440000.5, rate_hz=25600.0, seq=9)
    block = parse("p", encode_binary(original), NOW)
    assert (block.channels, block.rate_hz, block.seq, block.t0) == (
        ("ax", "ay", "az"),
        25600.0,
        9,
        1732440000.5,
    )
    np.testing.assert_array_equal(block.values, values)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "bad_json"),
        (b"[1, 2]", "bad_shape"),
        (b'{"s2": 1.0}', "missing_ts"),
        (b'{"ts": "yesterday", "s2": 1}', "bad_timestamp"),
        (b'{"ts": 1900000000, "s2": 1}', "future_timestamp"),
        (b'{"ts": -5, "s2": 1}', "bad_timestamp"),
        (b'{"ts": 1732440000}', "no_channels"),
        (b'{"ts": 1732440000, "s2": "high"}', "bad_value"),
        (b'{"ts": 1732440000, "s2": true}', "bad_value"),
        (b'{"ts": 1732440000, "rate_hz": 0, "values": {"a": [1]}}', "bad_rate"),
        (b'{"ts": 1732440000, "rate_hz": 10, "values": {"a": [1], "b": [1, 2]}}', "ragged"),
        (b'{"ts": 1732440000, "rate_hz": 10, "values": {"a": []}}', "bad_length"),
        (b'{"ts": 1732440000, "rate_hz": 10, "values": {"a": [1, "x"]}}', "bad_value"),
        (b'{"ts": 1732440000, "rate_hz": 10, "values": {"a": [1, null]}}', "non_finite"),
        (b'{"ts": 1732440000, "rate_hz": 10, "values": {"a": [1e400]}}', "bad_json"),
        (b'{"ts": 1732440000, "rate_hz": 10, "seq": -1, "values": {"a": [1]}}', "bad_seq"),
        (b"PDMB\x01", "bad_binary"),
    ],
)
def test_malformed_payloads_have_reasons(payload: bytes, reason: str) -> None:
    """Test that each kind of malformed payload is rejected with its own reason code."""
    with pytest.raises(PayloadError) as caught:
        parse("p", payload, NOW)
    assert caught.value.reason == reason


def test_binary_with_nan_and_wrong_length_rejected() -> None:
    """Test that a binary block with NaN or a truncated body is rejected."""
    values = np.array([[1.0, math.nan]])
    bad = encode_binary(SampleBlock("p", ("a", "b"), values, 1732440000.0, rate_hz=10.0))
    with pytest.raises(PayloadError, match="non_finite"):
        parse("p", bad, NOW)
    good = encode_binary(SampleBlock("p", ("a", "b"), np.ones((2, 2)), 1732440000.0, rate_hz=10.0))
    with pytest.raises(PayloadError, match="bad_length"):
        parse("p", good[:-3], NOW)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_never_crash(payload: bytes) -> None:
    """Test that arbitrary bytes either parse or raise PayloadError, nothing else."""
    with contextlib.suppress(PayloadError):
        parse("p", payload, NOW)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"ts": st.one_of(st.floats(), st.integers(), st.text(max_size=3), st.none())},
        optional={
            "rate_hz": JSON_VALUES,
            "seq": JSON_VALUES,
            "values": JSON_VALUES,
            "ax": JSON_VALUES,
        },
    )
)
def test_wrong_json_types_never_crash(message: dict) -> None:
    """Test that messages with random field types parse to finite blocks or raise PayloadError."""
    try:
        payload = orjson.dumps(message)
    except (TypeError, orjson.JSONEncodeError):
        return  # NaN keys etc. that JSON itself cannot carry
    try:
        block = parse("p", payload, NOW)
    except PayloadError:
        return
    assert np.all(np.isfinite(block.values)) and block.values.ndim == 2
