"""The one shape in which samples travel from any source to the windowing stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SampleBlock:
    """Consecutive samples of one stream.

    Regular streams give `rate_hz` and the time of the first sample `t0`; irregular or
    per-cycle streams (one message per row) give `timestamps` per row instead.

    A source that knows its clock's quirks says so: `max_gap_s`, time steps up to this long
    join consecutive samples (a replay's `max_gap`: jittered timestamps are not gaps);
    `clock_stepped_back`, the clock was set back just before this block (a recording whose
    timestamps go backwards once), so the windower restarts instead of rejecting it.
    """

    stream: str
    channels: tuple[str, ...]
    values: np.ndarray  # (n, channels) float64
    t0: float
    rate_hz: float | None = None
    timestamps: np.ndarray | None = None
    seq: int | None = None
    max_gap_s: float | None = None
    clock_stepped_back: bool = False

    def __len__(self) -> int:
        return self.values.shape[0]
