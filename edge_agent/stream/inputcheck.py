"""Per-channel input health against the training reference the manifest carries.

A model trained on one sensor's behaviour answers confidently, and wrongly, when that sensor
drifts, freezes or clips. These checks run on the raw windows before the front end and say so
per channel, with hysteresis, so a subscriber can tell a machine fault from a sensor fault.

Only non-overlapping windows are checked (every ceil(window / hop)-th), so the cost is one
pass over each sample whatever the hop: a few numpy reductions per checked window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge_agent.config.models import InputHealthConfig
from edge_agent.manifest import ChannelReference

Condition = Literal["drift", "stuck", "out_of_range", "saturated"]
CONDITIONS: tuple[Condition, ...] = ("drift", "stuck", "out_of_range", "saturated")
_LIMITS = {
    "drift": "drift_z",
    "stuck": "stuck_ratio",
    "out_of_range": "out_of_range_fraction",
    "saturated": "saturation_fraction",
}  # the config field holding each condition's limit
_REPORT_ORDER = (1, 2, 3, 0)  # changes within one check: stuck, out_of_range, saturated, drift


@dataclass(frozen=True, slots=True)
class Checked:
    """One checked window: the changes, and the state after them when there were any or when
    it was the first check (else None: nothing to report)."""

    changes: list[Change]
    active: dict[str, list[str]] | None


@dataclass(frozen=True, slots=True)
class Change:
    """One condition of one channel changed state; `value` is the figure that decided it."""

    channel: str
    condition: Condition
    state: Literal["raised", "cleared"]
    value: float
    limit: float


class InputMonitor:
    """Checks one model's windows, channel by channel, against its manifest reference."""

    def __init__(
        self,
        channels: list[str],
        reference: dict[str, ChannelReference],
        config: InputHealthConfig,
        window: int,
        hop: int,
    ) -> None:
        self.channels = list(channels)
        self.config = config
        refs = [reference[c] for c in channels]
        self._mean = np.array([r.mean for r in refs])
        self._std = np.array([r.std for r in refs])
        self._window_std = np.array([r.window_std for r in refs])
        span = np.array([r.max - r.min for r in refs])
        margin = config.range_margin * np.maximum(span, self._std)
        ref_lo, ref_hi = np.array([r.min for r in refs]), np.array([r.max for r in refs])
        self._lo, self._hi = ref_lo - margin, ref_hi + margin
        # where a reading pinned on the window's extreme means clipping: the training range's
        # edge, or the sensor's own limit when configured inside it
        scale = [config.full_scale.get(c, (-math.inf, math.inf)) for c in channels]
        self._clip_lo = np.maximum(ref_lo, [low for low, _ in scale])
        self._clip_hi = np.minimum(ref_hi, [high for _, high in scale])
        self._varies = span > 0  # a channel constant in training cannot be said to clip
        self._stride = math.ceil(window / hop)
        self._until_next = 0
        self._means: deque[np.ndarray] = deque(maxlen=config.drift_horizon_windows)
        # Debounce per (condition, channel): raise after `persist_windows` positive checks in a
        # row, clear after as many negative ones; as arrays, so a quiet check is a few compares.
        self._active = np.zeros((len(CONDITIONS), len(self.channels)), dtype=bool)
        self._run = np.zeros((len(CONDITIONS), len(self.channels)), dtype=np.int64)
        self._limits = np.array([getattr(config, _LIMITS[c]) for c in CONDITIONS])
        self.checked = 0

    def active(self) -> dict[str, list[str]]:
        """Current conditions per channel (an empty list: healthy)."""
        return {
            c: [k for j, k in enumerate(CONDITIONS) if self._active[j, i]]
            for i, c in enumerate(self.channels)
        }

    def check(self, values: np.ndarray) -> list[Change]:
        """Take one window (window, channels); returns the conditions that changed state."""
        return self.check_many([values])[0].changes if self.due(1) else []

    def due(self, n: int) -> range:
        """Which of the next `n` windows (offsets 0 to n - 1) are checked: pass these to
        `check_many`, and no other; the windows in between are passed over without a call."""
        first = self._until_next
        if first >= n:
            self._until_next -= n
            return range(0)
        offsets = range(first, n, self._stride)
        self._until_next = offsets[-1] + self._stride - n
        return offsets

    def check_many(self, windows: Sequence[np.ndarray]) -> list[Checked]:
        """Check windows that `due` named, in stream order, each (window, channels): what one
        check after another gives, with the per-channel reductions done once for all of them
        (the same figures, bit for bit)."""
        n, channels = windows[0].shape
        rows = np.empty((len(windows), channels, n))  # channel-major: each row contiguous
        for one, window in zip(rows, windows):
            one[...] = window.T
        # Reduced along the contiguous last axis, each row is summed on its own, in the order
        # of a single window's (C, n) rows.
        mean = rows.mean(axis=2)
        low, high = rows.min(axis=2), rows.max(axis=2)
        # one row per condition, in CONDITIONS order; drift once its horizon is full
        figures = np.zeros((len(windows), len(CONDITIONS), len(self.channels)))
        figures[:, 2] = self._outside_fraction(rows, low, high)
        figures[:, 3] = self._pinned_fraction(rows, low, high)
        # numpy's std spelled out, to reuse the mean (the same operations: the same bits), in
        # the check's own copy of the samples, which nothing reads after this
        squared = np.subtract(rows, mean[..., None], out=rows)
        np.multiply(squared, squared, out=squared)
        figures[:, 1] = _ratio(np.sqrt(squared.sum(axis=2) / n), self._window_std)
        drift = np.zeros(len(windows), dtype=bool)
        for j in range(len(windows)):
            self._means.append(mean[j])
            if len(self._means) == self._means.maxlen:
                shift = np.abs(np.mean(self._means, axis=0) - self._mean)
                figures[j, 0], drift[j] = _ratio(shift, self._std, empty=0.0), True
        # stuck is positive at or below its limit (no variance), the others above theirs
        positive = np.greater(figures, self._limits[:, None])
        positive[:, 1] = figures[:, 1] <= self._limits[1]
        positive[:, 0] &= drift[:, None]
        first = self.checked == 0
        self.checked += len(windows)
        if (positive == self._active).all():  # the common case: every condition as it was
            self._run[:] = 0
            return [
                Checked([], self.active() if first and j == 0 else None)
                for j in range(len(windows))
            ]
        checked = []
        for j in range(len(windows)):
            changes = self._debounce(positive[j], figures[j])
            state = self.active() if changes or (first and j == 0) else None
            checked.append(Checked(changes, state))
        return checked

    def _debounce(self, positive: np.ndarray, figures: np.ndarray) -> list[Change]:
        """One check's (conditions, channels) verdicts against the state; the changes."""
        differs = positive != self._active
        self._run[~differs] = 0
        if not differs.any():
            return []
        self._run[differs] += 1
        changes = []
        for row in _REPORT_ORDER:
            active, run = self._active[row], self._run[row]
            for i in np.flatnonzero(run >= self.config.persist_windows):
                active[i], run[i] = positive[row, i], 0
                state = "raised" if active[i] else "cleared"
                value, limit = float(figures[row, i]), float(self._limits[row])
                changes.append(Change(self.channels[i], CONDITIONS[row], state, value, limit))
        return changes

    def _outside_fraction(self, rows: np.ndarray, low: np.ndarray, high: np.ndarray):
        """Share of samples beyond the widened training range; counted only where a channel's
        extremes leave it, so a healthy window costs two comparisons per channel."""
        fraction = np.zeros(low.shape)
        leaves = (low < self._lo) | (high > self._hi)
        if leaves.any():  # below and above are disjoint: their counts add up
            for j, i in zip(*np.nonzero(leaves)):
                row = rows[j, i]
                below = np.count_nonzero(row < self._lo[i])
                fraction[j, i] = below + np.count_nonzero(row > self._hi[i])
        return fraction / rows.shape[-1]

    def _pinned_fraction(self, rows: np.ndarray, low: np.ndarray, high: np.ndarray):
        """Share of samples repeating the window's extreme, where that extreme is at or beyond
        the clipping edge: a plateau of a clipping sensor or ADC. A single extreme sample is
        no plateau, so each side counts its repeats only."""
        pinned = np.zeros(low.shape)
        for edge, at_edge in ((high, high >= self._clip_hi), (low, low <= self._clip_lo)):
            at_edge &= self._varies
            if at_edge.any():  # whole counts: the sum is exact in either order
                for j, i in zip(*np.nonzero(at_edge)):
                    pinned[j, i] += np.count_nonzero(rows[j, i] == edge[j, i]) - 1
        return pinned / rows.shape[-1]


def _ratio(value: np.ndarray, scale: np.ndarray, empty: float = math.inf) -> np.ndarray:
    """value / scale, with `empty` where the training scale is zero (a constant channel has no
    variance to lose and no spread to drift against: those checks do not apply)."""
    out = np.full(value.shape, empty)
    np.divide(value, scale, out=out, where=scale > 0)
    return out
