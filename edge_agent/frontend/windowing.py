"""Window slicing with one convention everywhere.

A window is `window` consecutive samples; windows start at 0, hop, 2*hop, ... and only
complete windows are produced, so sample i belongs to windows whose start s has
s <= i < s + window. The agent's streaming buffer follows the same rule.
"""

from __future__ import annotations

import numpy as np


def window_starts(n_samples: int, window: int, hop: int) -> range:
    """Start indices of every complete window in a recording of `n_samples` samples."""
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1, got window={window} hop={hop}")
    if n_samples < window:
        return range(0)
    return range(0, n_samples - window + 1, hop)


def sliding_windows(samples: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Read-only view of shape (n_windows, window, channels) over a (time, channels) array.

    Each window is a row-contiguous block of the input, exactly what the streaming
    buffer hands the front end, so both paths feed identical memory to the features.
    """
    if samples.ndim != 2:
        raise ValueError(f"samples must be (time, channels), got shape {samples.shape}")
    starts = window_starts(samples.shape[0], window, hop)
    n_channels = samples.shape[1]
    if len(starts) == 0:
        return np.empty((0, window, n_channels), dtype=samples.dtype)
    row_stride, col_stride = samples.strides
    return np.lib.stride_tricks.as_strided(
        samples,
        shape=(len(starts), window, n_channels),
        strides=(row_stride * hop, row_stride, col_stride),
        writeable=False,
    )


def last_window(samples: np.ndarray, window: int) -> np.ndarray:
    """The final `window` rows; shorter inputs are padded at the front by repeating the first row.

    This is how a run-to-failure unit is scored on its last window (C-MAPSS protocol).
    """
    if samples.ndim != 2 or samples.shape[0] == 0:
        raise ValueError(f"samples must be a non-empty (time, channels) array, got {samples.shape}")
    if samples.shape[0] >= window:
        return samples[-window:]
    pad = np.repeat(samples[:1], window - samples.shape[0], axis=0)
    return np.concatenate([pad, samples], axis=0)
