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


# ---- the stream's clock: one bad timestamp costs its own window, not the data after it -------

T0 = 1_732_440_000.0


def _rows(n: int, bad: dict[int, float] | None = None, step: float = 1.0):
    """One-row blocks like C-MAPSS over MQTT (no sample rate); row i holds value i and is
    stamped T0 + i*step, plus an offset for the rows in `bad`."""
    bad = bad or {}
    for i in range(n):
        t = T0 + i * step + bad.get(i, 0.0)
        yield SampleBlock("e", ("a",), np.array([[float(i)]]), t, timestamps=np.array([t]))


def _rated(n_blocks: int, bad: dict[int, float] | None = None, size: int = 10):
    """Blocks of `size` samples at RATE with seq; sample j holds value j; blocks in `bad` carry a
    wrong t0 (their values and seq are right)."""
    bad = bad or {}
    for i in range(n_blocks):
        values = (np.arange(size, dtype=np.float64) + i * size)[:, None]
        t0 = T0 + i * size / RATE + bad.get(i, 0.0)
        yield SampleBlock("v", ("a",), values, t0, rate_hz=RATE, seq=i)


def _firsts(windower: Windower, blocks) -> list[float]:
    """The value of the first sample of every window (= its sample index)."""
    return [w.values[0, 0] for block in blocks for w in windower.push(block)]


@pytest.mark.parametrize("ahead", [250.0, 30.0])
def test_future_stamped_row_loses_only_the_windows_it_falls_in(ahead: float) -> None:
    """Test that in a row stream a row stamped ahead (beyond or within the jump tolerance)
    costs only the windows containing it, plus at most two rejected rows, not the rows after."""
    windower = Windower(["a"], window=40, hop=1, sample_rate_hz=None)
    assert windower.jump_tolerance_s() == 60.0  # before any step is known
    got = _firsts(windower, _rows(300, {100: ahead}))
    assert windower.jump_tolerance_s() == 80.0  # two windows of 40 rows, 1 s apart
    if ahead > 80.0:  # a jump: the window restarts, and again at the next row (the outlier)
        kept = [range(0, 100), range(101, 300)]
        assert windower.counters == {"time_jump_reset": 1, "clock_resync": 1}
    else:  # within the tolerance the row stays, two rows after it go, then the clock steps back
        kept = [range(0, 101), range(103, 300)]
        assert windower.counters == {"out_of_order": 2, "clock_step_back": 1}
    # Every window that lies wholly inside a stretch of kept rows comes out, and no other.
    expected = [s for rows in kept for s in range(rows.start, rows.stop - 40 + 1)]
    assert got == expected
    assert got[-1] == 260  # the stream runs to its end


@pytest.mark.parametrize("ahead", [250.0, 5.0])
def test_future_stamped_block_loses_only_the_window_it_falls_in(ahead: float) -> None:
    """Test that in a rated stream a block stamped ahead (beyond or within the jump tolerance)
    costs the window it falls in, and windows restart at the very next block."""
    windower = Windower(["a"], window=32, hop=8, sample_rate_hz=RATE)
    got = _firsts(windower, _rated(60, {20: ahead}))
    reset = "time_jump_reset" if ahead > 60 else "gap_reset"
    assert windower.counters == {reset: 1, "clock_resync": 1}
    before = [s for s in range(0, 200 - 32 + 1, 8)]  # windows ending before block 20
    after = list(range(210, 600 - 32 + 1, 8))  # restarted at block 21, hop 8 to the end
    assert got == before + after


def test_real_jump_ahead_is_kept() -> None:
    """Test that a stream that really resumes ten minutes later restarts once and carries on."""
    windower = Windower(["a"], window=32, hop=8, sample_rate_hz=RATE)
    got = _firsts(windower, _rated(60, {i: 600.0 for i in range(20, 60)}))
    assert windower.counters == {"time_jump_reset": 1}
    assert got == list(range(0, 200 - 32 + 1, 8)) + list(range(200, 600 - 32 + 1, 8))


def test_clock_stepped_back_is_followed_after_three_blocks() -> None:
    """Test that a clock stepped back (NTP) is believed after three blocks agree, not never."""
    windower = Windower(["a"], window=32, hop=8, sample_rate_hz=RATE)
    got = _firsts(windower, _rated(60, {i: -30.0 for i in range(20, 60)}))
    assert windower.counters == {"out_of_order": 2, "clock_step_back": 1}
    assert got == list(range(0, 200 - 32 + 1, 8)) + list(range(220, 600 - 32 + 1, 8))


def test_a_single_late_block_is_rejected_without_a_restart() -> None:
    """Test that a redelivered old block is rejected and does not restart the window."""
    windower = Windower(["a"], window=32, hop=8, sample_rate_hz=None)
    blocks = list(_rated(30))
    got = _firsts(windower, [*blocks[:15], blocks[3], *blocks[15:]])
    assert windower.counters == {"out_of_order": 1}
    assert got == list(range(0, 300 - 32 + 1, 8))


def _stamped(times: np.ndarray, max_gap_s: float | None = None):
    """One block per sample at RATE with explicit timestamps (a replay's), value = index."""
    for i, t in enumerate(times):
        yield SampleBlock(
            "r", ("a",), np.array([[float(i)]]), t, RATE, np.array([t]), max_gap_s=max_gap_s
        )


def test_model_max_gap_bridges_unless_the_source_sets_its_own() -> None:
    """Test that the manifest's max_gap bridges a step the source does not, and that a source's
    own max_gap overrides it: the replay windows as training did."""
    times = T0 + np.r_[np.arange(10), 11 + np.arange(10)] / RATE  # one step of 2 periods
    plain = Windower(["a"], window=4, hop=1, sample_rate_hz=RATE)
    assert _firsts(plain, _stamped(times)) == [*range(7), *range(10, 17)]
    bridged = Windower(["a"], window=4, hop=1, sample_rate_hz=RATE, max_gap_s=2.5 / RATE)
    assert _firsts(bridged, _stamped(times)) == list(range(17))
    assert bridged.counters == {}
    strict = Windower(["a"], window=4, hop=1, sample_rate_hz=RATE, max_gap_s=2.5 / RATE)
    assert len(_firsts(strict, _stamped(times, max_gap_s=1.2 / RATE))) == 14
    assert strict.counters == {"gap_reset": 1}


def test_row_stream_learns_a_slow_pace() -> None:
    """Test that hourly rows are not called time jumps once their pace is known."""
    windower = Windower(["a"], window=40, hop=1, sample_rate_hz=None)
    got = _firsts(windower, _rows(200, step=3600.0))
    assert windower.counters == {"time_jump_reset": 1}  # only the very first step, unknown pace
    assert got == list(range(1, 200 - 40 + 1))
    assert windower.jump_tolerance_s() == 2 * 40 * 3600.0


# ---- saying why no window forms ----------------------------------------------------------------


def test_diagnosis_counts_gaps_and_names_the_largest() -> None:
    """Test that a recording with holes is diagnosed with the number of gaps and the largest."""
    windower = Windower(["a"], window=8192, hop=4096, sample_rate_hz=25600.0)
    pauses = np.r_[0.0, np.where(np.arange(1, 20) == 7, 247.0, 2.0)]  # before each block
    for i, offset in enumerate(np.cumsum(pauses)):
        t0 = T0 + i * 2560 / 25600.0 + offset
        block = SampleBlock("v", ("a",), np.zeros((2560, 1)), t0, rate_hz=25600.0)
        assert windower.push(block) == []
    assert windower.stalled()
    assert windower.diagnosis() == (
        "no window formed from 51200 samples: time gaps above 1.5 sample periods in 19 places; "
        "largest 247 s; longest unbroken stretch 2560 samples (a window needs 8192)"
    )
    assert windower.stall_kind() == "discontinuities"
    assert windower.counters == {"gap_reset": 18, "time_jump_reset": 1}  # 247 s is above 60 s


def test_diagnosis_puts_the_costliest_reason_first() -> None:
    """Test that missing channels, a wrong rate and disorder are each named, costliest first."""
    windower = Windower(["a", "b"], window=100, hop=50, sample_rate_hz=RATE)
    two = ("a", "b")
    windower.push(SampleBlock("v", two, np.zeros((10, 2)), T0, rate_hz=RATE))
    windower.push(SampleBlock("v", two, np.zeros((5, 2)), T0 - 1, rate_hz=RATE))
    for i in range(4):
        windower.push(SampleBlock("v", ("a",), np.zeros((20, 1)), T0 + i, rate_hz=RATE))
    windower.push(SampleBlock("v", two, np.zeros((30, 2)), T0 + 9, rate_hz=50.0))
    assert not windower.stalled()  # 125 samples: not yet more than window + hop
    assert windower.diagnosis() == (
        "no window formed from 125 samples: 4 blocks (80 samples) lack channel(s) b; "
        "1 block (30 samples) at 50 Hz, the model needs 100 Hz; "
        "1 block (5 samples) out of order (time going backwards)"
    )
    windower.push(SampleBlock("v", ("a",), np.zeros((100, 1)), T0, rate_hz=RATE))
    assert windower.stalled() and windower.stall_kind() == "missing_channels"


def test_diagnosis_of_too_few_samples_and_of_the_time_since_the_last_window() -> None:
    """Test that a short input says so, and that after a window the count restarts."""
    windower = Windower(["a"], window=40, hop=1, sample_rate_hz=None)
    list(_firsts(windower, _rows(30)))
    assert windower.diagnosis() == (
        "no window formed from 30 samples: fewer samples than one window (40) arrived"
    )
    windower = Windower(["a"], window=40, hop=40, sample_rate_hz=None)
    assert len(_firsts(windower, _rows(50))) == 1
    assert windower.diagnosis().startswith("no window formed from the last 10 samples")


def test_rated_blocks_window_as_with_every_time_stamp_computed() -> None:
    """Test that rated blocks, whose times are only computed where stored, give the windows,
    times, runs and counters that computing and checking every sample's time gives, over
    clocks and rates where rounding makes steps uneven, gaps, and a max_gap below a period."""
    rng = np.random.default_rng(11)
    for t0, rate in ((1.7e9, 25600.0), (0.0, 3.0), (1.7e9, 4e6), (1e15, 1000.0), (-5.0, 10.0)):
        for max_gap in (None, 1.2 / rate, 0.5 / rate):
            blocks, t = [], t0
            for seq in range(40):
                n = int(rng.integers(1, 50))
                values = rng.normal(size=(n, 2))
                blocks.append(SampleBlock("s", ("a", "b"), values, t, rate_hz=rate, seq=seq))
                t += (n + (rng.integers(1, 4) if rng.random() < 0.1 else 0)) / rate
            fast = Windower(["a", "b"], 16, 4, rate, max_gap_s=max_gap)
            slow = Windower(["a", "b"], 16, 4, rate, max_gap_s=max_gap)
            slow._regular = lambda block: None  # type: ignore[method-assign]
            for block in blocks:
                got, expected = fast.push(block), slow.push(block)
                assert [(w.start, w.end, w.run) for w in got] == [
                    (w.start, w.end, w.run) for w in expected
                ]
                assert all(np.array_equal(a.values, b.values) for a, b in zip(got, expected))
            assert fast.counters == slow.counters and fast.windows == slow.windows


def test_windows_kept_by_the_caller_never_change() -> None:
    """Test that windows, which view the windower's buffer, keep their samples through later
    pushes, buffer compactions, gaps and restarts (each checked against the recording)."""
    rng = np.random.default_rng(2)
    values = rng.normal(size=(30000, 2))  # every row unique: a window's first row finds it
    windower = Windower(["a", "b"], window=50, hop=7, sample_rate_hz=RATE)
    kept, start, t0, blocks = [], 0, 1000.0, 0
    while start < len(values):
        size = int(rng.integers(1, 3000))
        blocks += 1
        t0 += 1.0 if blocks % 5 == 0 else 0.0  # a gap: a restart at the buffer's front
        chunk = values[start : start + size]
        kept += windower.push(SampleBlock("s", ("a", "b"), chunk, t0 + start / RATE, rate_hz=RATE))
        start += size
    assert windower.counters["gap_reset"] >= 3 and len(kept) > 3000
    row = {tuple(sample): i for i, sample in enumerate(values)}
    for window in kept:
        first = row[tuple(window.values[0])]
        np.testing.assert_array_equal(window.values, values[first : first + 50])
        assert not window.values.flags.writeable
