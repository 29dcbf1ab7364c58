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


# ---- one number rule for rows and blocks -------------------------------------------------------


def _row(value: object) -> bytes:
    return orjson.dumps({"ts": 1732440000.0, "s2": value})


def _block(*values: object) -> bytes:
    return orjson.dumps({"ts": 1732440000.0, "rate_hz": 10, "values": {"s2": list(values)}})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1.5", "bad_value"),  # numbers sent as strings are not numbers, in rows or blocks
        (True, "bad_value"),
        (False, "bad_value"),
        (None, "non_finite"),
        (1e308, "non_finite"),  # beyond float32: infinity in the model's input
        (-1e308, "non_finite"),
        (3.5e38, "non_finite"),
        ([1, 2], "bad_shape"),
        ({"x": 1}, "bad_shape"),
    ],
)
def test_rows_and_blocks_reject_a_value_for_the_same_reason(value: object, reason: str) -> None:
    """Test that a row and a block reject the same value with the same reason."""
    for payload in (_row(value), _block(1.5, value, 2.5)):
        with pytest.raises(PayloadError) as caught:
            parse("p", payload, NOW)
        assert caught.value.reason == reason, payload


@pytest.mark.parametrize("value", [0, 1, 0.0, 1.0, -2, 3.4e38, -3.4028235e38, 12345678901234])
def test_rows_and_blocks_accept_the_same_numbers(value: float) -> None:
    """Test that integers (0 and 1 too, unlike booleans) and the float32 extremes pass both."""
    assert parse("p", _row(value), NOW).values[0, 0] == float(value)
    block = parse("p", _block(value, value, 1.0), NOW)
    np.testing.assert_array_equal(block.values[:, 0], [value, value, 1.0])


def test_nested_arrays_are_bad_shape_and_unequal_lengths_ragged() -> None:
    """Test that arrays inside a block's channel arrays are rejected by the parser."""
    nested = [
        {"ax": [[1, 2], [3, 4]]},
        {"ax": [[1], [2, 3]]},
        {"ax": [1, [2]]},
        {"ax": [[]]},
        {"ax": [1, 2], "ay": [[3, 4], [5, 6]]},
    ]
    for values in nested:
        payload = orjson.dumps({"ts": 1732440000, "rate_hz": 10, "values": values})
        with pytest.raises(PayloadError) as caught:
            parse("p", payload, NOW)
        assert caught.value.reason == "bad_shape", values
    ragged = orjson.dumps({"ts": 1732440000, "rate_hz": 10, "values": {"a": [[1, 2]], "b": [1, 2]}})
    with pytest.raises(PayloadError, match="ragged"):
        parse("p", ragged, NOW)


def test_boolean_among_many_zeros_and_ones_is_found() -> None:
    """Test that one boolean hidden among integer 0/1 samples (a digital channel) is rejected."""
    series = [i % 2 for i in range(5000)]
    assert parse("p", _block(*series), NOW).values[:, 0].tolist() == series
    series[4321] = True
    with pytest.raises(PayloadError, match=r"bad_value: values.s2\[4321\]"):
        parse("p", _block(*series), NOW)


@pytest.mark.parametrize("rate", [None, "25600", True, -1, 0.0])
def test_block_rate_must_be_a_positive_number(rate: object) -> None:
    """Test that a missing or non-numeric rate is bad_rate, like a zero one."""
    message = {"ts": 1732440000, "values": {"a": [1.0]}}
    if rate is not None:
        message["rate_hz"] = rate
    with pytest.raises(PayloadError) as caught:
        parse("p", orjson.dumps(message), NOW)
    assert caught.value.reason == "bad_rate"


def test_binary_and_json_blocks_agree() -> None:
    """Test that the float32 extremes pass in both block forms and infinity is non_finite in
    binary as 1e308 is in JSON."""
    extremes = np.array([[3.4028234663852886e38], [-3.4028234663852886e38], [1.5]])
    binary = encode_binary(SampleBlock("p", ("s2",), extremes, 1732440000.0, rate_hz=10.0))
    from_json = parse("p", _block(*extremes[:, 0].tolist()), NOW)
    np.testing.assert_array_equal(parse("p", binary, NOW).values, from_json.values)
    infinite = np.array([[1.0], [np.inf]])
    with pytest.raises(PayloadError) as caught:
        parse(
            "p", encode_binary(SampleBlock("p", ("s2",), infinite, 1732440000.0, rate_hz=10.0)), NOW
        )
    assert caught.value.reason == "non_finite"


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_one_number_rule_for_any_value(value: object) -> None:
    """Test that for any JSON value a row and a block agree: both take it as the same float or
    both reject it with the same reason."""

    def outcome(payload: bytes) -> object:
        try:
            block = parse("p", payload, NOW)
        except PayloadError as exc:
            return exc.reason
        return float(block.values[-1, 0])

    try:
        row, block = _row(value), _block(2.0, value)
    except (TypeError, orjson.JSONEncodeError):
        return  # NaN keys etc. that JSON itself cannot carry
    assert outcome(row) == outcome(block)
