"""Hand-worked windowing examples, including the boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.frontend.windowing import last_window, sliding_windows, window_starts


def _ramp(n: int, channels: int = 2) -> np.ndarray:
    """Sample i of channel c holds 10*i + c, so every value names its position."""
    return np.arange(n)[:, None] * 10.0 + np.arange(channels)[None, :]


def test_window_starts_hand_worked() -> None:
    """Test that 10 samples, window 4, hop 3 give windows at 0, 3, 6 (6+4 = 10 fits exactly)."""
    assert list(window_starts(10, 4, 3)) == [0, 3, 6]


def test_window_starts_drop_incomplete_tail() -> None:
    """Test that a window that would run one sample past the end is not produced."""
    assert list(window_starts(9, 4, 3)) == [0, 3]
    assert list(window_starts(3, 4, 1)) == []
    assert list(window_starts(4, 4, 100)) == [0]


def test_sliding_windows_contents() -> None:
    """Test that each window holds exactly the samples start .. start+window-1, all channels."""
    windows = sliding_windows(_ramp(10), window=4, hop=3)
    assert windows.shape == (3, 4, 2)
    np.testing.assert_array_equal(windows[0, :, 0], [0, 10, 20, 30])
    np.testing.assert_array_equal(windows[2, :, 1], [61, 71, 81, 91])
    np.testing.assert_array_equal(windows[1, 0], [30, 31])


def test_sliding_windows_hop_larger_than_window_skips_samples() -> None:
    """Test that hop > window leaves gaps between windows rather than overlapping them."""
    windows = sliding_windows(_ramp(10, 1), window=2, hop=5)
    np.testing.assert_array_equal(windows[:, :, 0], [[0, 10], [50, 60]])


def test_sliding_windows_is_read_only_view() -> None:
    """Test that the windows share memory with the recording and cannot be written through."""
    samples = _ramp(8)
    windows = sliding_windows(samples, 4, 2)
    assert np.shares_memory(windows, samples)
    with pytest.raises(ValueError):
        windows[0, 0, 0] = 1.0


def test_sliding_windows_too_short_gives_empty() -> None:
    """Test that a recording shorter than one window gives zero windows of the right shape."""
    assert sliding_windows(_ramp(3), 4, 1).shape == (0, 4, 2)


def test_invalid_window_and_shape_are_rejected() -> None:
    """Test that a zero hop or a 1-D recording raises a readable ValueError."""
    with pytest.raises(ValueError, match="hop"):
        window_starts(10, 4, 0)
    with pytest.raises(ValueError, match="time, channels"):
        sliding_windows(np.arange(5.0), 2, 1)


def test_last_window_exact_and_padded() -> None:
    """Test that the last window is the final rows, front-padded with the first row if short."""
    np.testing.assert_array_equal(last_window(_ramp(5, 1), 3)[:, 0], [20, 30, 40])
    np.testing.assert_array_equal(last_window(_ramp(2, 1), 4)[:, 0], [0, 0, 0, 10])
