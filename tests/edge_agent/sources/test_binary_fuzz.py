"""Fuzzing the binary sample form behind a *valid* `PDMB` header (random bytes almost never start
with the magic, so they only reach the JSON parser): every header field, the channel names, the
body length and the samples are drawn at random, and `parse` must either return a block that
agrees with the bytes or raise PayloadError, never anything else."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.sources.payloads import (
    BINARY_HEADER,
    BINARY_MAGIC,
    MAX_CLOCK_SKEW_S,
    MAX_SAMPLES,
    PayloadError,
    parse,
)
from edge_agent.stream.blocks import SampleBlock

NOW = 1_732_440_100.0
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
# The single defect a payload has, and the reason that alone must give.
REASON_FOR = {
    "version": {"bad_binary"},
    "no_channels": {"bad_length"},
    "no_samples": {"bad_length"},
    "body_length": {"bad_length"},
    "non_finite": {"non_finite"},
    "rate": {"bad_rate"},
    "timestamp": {"bad_timestamp"},
    "future": {"future_timestamp"},
    "names": {"bad_binary"},
}


def mostly(draw, usual: st.SearchStrategy, wild: st.SearchStrategy):
    """A value from `usual` about three times in four, so most payloads get far into the parser
    (the choice is drawn, not weighted by repeating a strategy, which Hypothesis merges)."""
    return draw(wild) if draw(st.integers(0, 3)) == 3 else draw(usual)


@st.composite
def binary_payloads(draw) -> tuple[bytes, set[str], bool]:
    """A PDMB payload, the defects it was built with, and whether its outcome is determined
    (False when a field was drawn so freely that acceptance depends on chance alignment)."""
    defects: set[str] = set()
    determined = True
    version = mostly(draw, st.just(1), st.integers(0, 255))
    if version != 1:
        defects.add("version")
    names = mostly(
        draw,
        st.lists(st.text("xyz_019", min_size=1, max_size=4), min_size=1, max_size=5, unique=True),
        st.lists(st.text(max_size=6), max_size=5),
    )
    name_bytes = ",".join(names).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 9:  # raw bytes: possibly not UTF-8 at all
        name_bytes = draw(st.binary(max_size=12))
    try:
        seen = name_bytes.decode().split(",")
    except UnicodeDecodeError:
        seen = None
    n_channels = mostly(draw, st.just(len(seen or [])), st.integers(0, 255))
    if n_channels == 0:
        defects.add("no_channels")
    elif seen is None or len(seen) != n_channels or len(set(seen)) != len(seen):
        defects.add("names")
    elif "" in seen:
        determined = False  # whether an empty channel name is allowed is not specified here
    name_len = mostly(draw, st.just(len(name_bytes)), st.integers(0, 65535))
    if name_len != len(name_bytes):
        determined = False  # names and body shift against each other
    n_samples = mostly(draw, st.integers(1, 12), st.integers(0, 2**32 - 1))
    if n_samples == 0 or n_samples > MAX_SAMPLES:
        defects.add("no_samples")
    seq = draw(st.integers(0, 2**64 - 1))
    t0 = mostly(
        draw,
        st.floats(1.6e9, NOW),
        st.one_of(st.floats(NOW, NOW + 2 * MAX_CLOCK_SKEW_S), ANY_FLOAT),
    )
    if not (math.isfinite(t0) and t0 > 0):
        defects.add("timestamp")
    elif t0 > NOW + MAX_CLOCK_SKEW_S:
        defects.add("future")
    rate = mostly(draw, st.floats(0.5, 1e5), ANY_FLOAT)
    if not (math.isfinite(rate) and rate > 0):
        defects.add("rate")
    declared = n_channels * n_samples
    count = declared if declared <= 120 else draw(st.integers(0, 40))
    samples = draw(st.lists(st.floats(width=32, allow_nan=False), min_size=count, max_size=count))
    if samples and draw(st.integers(0, 3)) == 3:
        bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        samples[draw(st.integers(0, len(samples) - 1))] = bad
    if not all(math.isfinite(x) for x in samples):
        defects.add("non_finite")
    body = np.asarray(samples, dtype="<f4").tobytes()
    edit = draw(st.sampled_from(["exact", "exact", "exact", "exact", "truncate", "extend"]))
    if edit == "truncate" and body:
        body = body[: -draw(st.integers(1, len(body)))]
    elif edit == "extend":
        body += draw(st.binary(min_size=1, max_size=9))
    if len(body) != 4 * declared:
        defects.add("body_length")
    header = BINARY_HEADER.pack(
        BINARY_MAGIC, version, n_channels, n_samples, seq, t0, rate, name_len
    )
    return header + name_bytes + body, defects, determined


def check_consistent(block: SampleBlock, payload: bytes) -> None:
    """The block says exactly what the bytes say, and only a well-formed payload gives one."""
    _, version, n_channels, n_samples, seq, t0, rate, name_len = BINARY_HEADER.unpack_from(payload)
    names_end = BINARY_HEADER.size + name_len
    channels = tuple(payload[BINARY_HEADER.size : names_end].decode().split(","))
    assert version == 1
    assert len(payload) == names_end + 4 * n_channels * n_samples
    assert block.stream == "p"
    assert block.channels == channels and len(channels) == n_channels == len(set(channels))
    assert block.values.shape == (n_samples, n_channels) and block.values.dtype == np.float64
    samples = np.frombuffer(payload, "<f4", offset=names_end).reshape(n_samples, n_channels)
    np.testing.assert_array_equal(block.values, samples.astype(np.float64))
    assert np.isfinite(block.values).all()
    assert block.t0 == t0 and 0 < t0 <= NOW + MAX_CLOCK_SKEW_S
    assert block.rate_hz == rate and math.isfinite(rate) and rate > 0
    assert block.seq == seq or (seq == 0 and block.seq is None)
    assert block.timestamps is None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(binary_payloads())
def test_binary_header_fuzz_gives_a_consistent_block_or_payload_error(generated) -> None:
    """Test that any PDMB payload parses to a block matching its bytes or raises PayloadError."""
    payload, defects, determined = generated
    # Header fields read before the names: wrong whatever the names and body turn out to be.
    fatal = defects & {"version", "no_channels", "no_samples", "timestamp", "future", "rate"}
    try:
        block = parse("p", payload, NOW)
    except PayloadError as error:
        assert defects or not determined, f"a well-formed payload was refused: {error}"
        if determined and len(defects) == 1:
            (defect,) = defects
            assert error.reason in REASON_FOR[defect], (defect, str(error))
        return
    assert not fatal, f"accepted a payload with {fatal}"
    assert not (defects and determined), f"accepted a payload with {defects}"
    check_consistent(block, payload)


@settings(max_examples=150, deadline=None)
@given(
    names=st.lists(
        st.text(st.characters(blacklist_characters=",", blacklist_categories=("Cs",)), min_size=1),
        min_size=1,
        max_size=6,
        unique=True,
    ),
    n_samples=st.integers(1, 20),
    seq=st.integers(0, 2**64 - 1),
    t0=st.floats(1e9, NOW + MAX_CLOCK_SKEW_S),
    rate=st.floats(1e-3, 1e6),
    data=st.data(),
)
def test_well_formed_binary_payloads_are_accepted_exactly(
    names: list[str], n_samples: int, seq: int, t0: float, rate: float, data
) -> None:
    """Test that every well-formed PDMB payload is accepted with its fields and samples intact."""
    count = n_samples * len(names)
    samples = data.draw(
        st.lists(
            st.floats(width=32, allow_nan=False, allow_infinity=False),
            min_size=count,
            max_size=count,
        )
    )
    name_bytes = ",".join(names).encode()
    header = BINARY_HEADER.pack(
        BINARY_MAGIC, 1, len(names), n_samples, seq, t0, rate, len(name_bytes)
    )
    payload = header + name_bytes + np.asarray(samples, dtype="<f4").tobytes()
    block = parse("p", payload, NOW)
    check_consistent(block, payload)
    assert block.channels == tuple(names)
