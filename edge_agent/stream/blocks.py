"""The one shape in which samples travel from any source to the windowing stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SampleBlock:
    """Consecutive samples of one stream.

    Regular streams give `rate_hz` and the time of the first sample `t0`; irregular or
    per-cycle streams (one message per row) give `timestamps` per row instead.
    """

    stream: str
    channels: tuple[str, ...]
    values: np.ndarray  # (n, channels) float64
    t0: float
    rate_hz: float | None = None
    timestamps: np.ndarray | None = None
    seq: int | None = None

    def __len__(self) -> int:
        return self.values.shape[0]
