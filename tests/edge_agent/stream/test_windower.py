"""Streaming windows: same windows as training's slicing, and every discontinuity reported."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.frontend.steps import FeaturePipeline
from edge_agent.frontend.windowing import sliding_windows
from edge_agent.manifest import Manifest
from edge_agent.sim.vibration import CHANNELS, MachineConditions, generate
from edge_agent.stream.blocks import SampleBlock
from edge_agent.stream.windower import Windower
from tests.conftest import REPO_ROOT

RATE = 100.0


def _blocks(values: np.ndarray, sizes: list[int], t0: float = 1000.0, seq0: int = 0):
    """Split a recording into consecutive blocks of the given sizes."""
    out, start = [], 0
    for i, size in enumerate(sizes):
        chunk = values[start : start + size]
        out.append(
            SampleBlock("s", ("a", "b"), chunk, t0 + start / RATE, rate_hz=RATE, seq=seq0 + i)
        )
        start += size
    return out


def test_streaming_equals_sliding_windows_for_any_block_sizes() -> None:
    """Test that windows cut from uneven blocks equal sliding_windows over the whole recording."""
    values = np.arange(200.0).reshape(100, 2)
    windower = Windower(["a", "b"], window=8, hop=3, sample_rate_hz=RATE)
    got = [w for block in _blocks(values, [1, 7, 2, 30, 5, 55]) for w in windower.push(block)]
    expected = sliding_windows(values, 8, 3)
    assert len(got) == len(expected) == 31
    for window, reference in zip(got, expected):
        np.testing.assert_array_equal(window.values, reference)
    assert got[0].start == 1000.0 and got[0].end == pytest.approx(1000.07)
    assert not windower.counters


def test_channel_order_and_map_follow_the_model() -> None:
    """Test that source columns are picked and reordered into the model's channel order."""
    windower = Windower(["y", "x"], window=2, hop=2, sample_rate_hz=None, channel_map={"y": "b"})
    block = SampleBlock(
        "s",
        ("x", "b", "z"),
        np.array([[1.0, 2, 3], [4, 5, 6]]),
        1.0,
        timestamps=np.array([1.0, 2.0]),
    )
    (window,) = windower.push(block)
    np.testing.assert_array_equal(window.values, [[2, 1], [5, 4]])


def test_gap_resets_and_is_counted() -> None:
    """Test that a time gap between blocks restarts windowing instead of stitching across it."""
    values = np.arange(40.0).reshape(20, 2)
    windower = Windower(["a", "b"], window=4, hop=4, sample_rate_hz=RATE)
    first, second = _blocks(values, [10, 10])
    assert len(windower.push(first)) == 2  # samples 0-7; 8, 9 wait for more
    late = SampleBlock("s", ("a", "b"), second.values, second.t0 + 1.0, rate_hz=RATE, seq=1)
    windows = windower.push(late)
    assert windower.counters["gap_reset"] == 1
    np.testing.assert_array_equal(windows[0].values, values[10:14])  # not samples 8, 9 + 10, 11


def test_gap_inside_a_block_splits_it() -> None:
    """Test that a hole inside one block (replay of a file with a pause) is not stitched."""
    times = np.r_[np.arange(6) / RATE, 10 + np.arange(6) / RATE]
    values = np.arange(24.0).reshape(12, 2)
    windower = Windower(["a", "b"], window=4, hop=4, sample_rate_hz=RATE)
    windows = windower.push(SampleBlock("s", ("a", "b"), values, 0.0, timestamps=times))
    assert [w.values[0, 0] for w in windows] == [0.0, 12.0]
    assert windower.counters["gap_reset"] == 1


def test_sequence_break_resets() -> None:
    """Test that a skipped block sequence number resets even when timestamps look continuous."""
    values = np.arange(40.0).reshape(20, 2)
    windower = Windower(["a", "b"], window=4, hop=4, sample_rate_hz=RATE)
    a, b = _blocks(values, [10, 10])
    windower.push(a)
    windower.push(SampleBlock("s", ("a", "b"), b.values, b.t0, rate_hz=RATE, seq=5))
    assert windower.counters["gap_reset"] == 1


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (SampleBlock("s", ("a",), np.zeros((3, 1)), 5.0, rate_hz=RATE), "missing_channels"),
        (SampleBlock("s", ("a", "b"), np.zeros((3, 2)), 5.0, rate_hz=50.0), "sample_rate_mismatch"),
        (SampleBlock("s", ("a", "b"), np.zeros((3, 2)), 0.5, rate_hz=RATE), "out_of_order"),
        (
            SampleBlock("s", ("a", "b"), np.zeros((2, 2)), 5.0, timestamps=np.array([6.0, 5.5])),
            "out_of_order",
        ),
    ],
)
def test_bad_blocks_are_rejected_by_reason(block: SampleBlock, reason: str) -> None:
    """Test that wrong channels, wrong rate and time going backwards are counted, not fatal."""
    windower = Windower(["a", "b"], window=2, hop=1, sample_rate_hz=RATE)
    windower.push(SampleBlock("s", ("a", "b"), np.zeros((1, 2)), 1.0, rate_hz=RATE))
    assert windower.push(block) == []
    assert windower.counters[reason] == 1


def test_agent_and_training_give_bit_identical_model_inputs() -> None:
    """Test that a recording streamed in blocks gives the same bytes of model input as training."""
    manifest = Manifest.model_validate_json(
        (REPO_ROOT / "models/vibration-fault/manifest.json").read_text()
    )
    spec = manifest.input
    recording = generate(
        MachineConditions(fault="bearing_inner", shaft_hz=27.0), 40_000, spec.sample_rate_hz, seed=5
    )
    pipeline = FeaturePipeline(spec.features, spec.sample_rate_hz)
    training_inputs = pipeline.batch(sliding_windows(recording, spec.window, spec.hop))

    windower = Windower(spec.channels, spec.window, spec.hop, spec.sample_rate_hz)
    streamed = []
    rng = np.random.default_rng(0)
    start = 0
    while start < len(recording):
        size = int(rng.integers(1, 5000))
        chunk = recording[start : start + size].astype(np.float64)
        block = SampleBlock(
            "m", CHANNELS, chunk, 100.0 + start / spec.sample_rate_hz, rate_hz=spec.sample_rate_hz
        )
        streamed += [pipeline(w.values) for w in windower.push(block)]
        start += size
    assert len(streamed) == len(training_inputs) == 8
    assert np.stack(streamed).tobytes() == training_inputs.tobytes()
