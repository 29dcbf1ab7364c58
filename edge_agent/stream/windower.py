"""Per-model streaming windows with the same convention as `frontend.windowing`.

Windows start every `hop` samples after a (re)start; a gap, a sequence break, a sample-rate
change or out-of-order data resets the buffer and is reported, never silently stitched.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from edge_agent.stream.blocks import SampleBlock

GAP_TOLERANCE = 0.5  # sample periods a block start may deviate before it counts as a gap


@dataclass(frozen=True, slots=True)
class Window:
    values: np.ndarray  # (window, channels) float64, channels in model order
    start: float  # measurement time of the first and last sample
    end: float


class Windower:
    """Cuts windows for one model from one stream; counts every rejected or reset condition."""

    def __init__(
        self,
        channels: list[str],
        window: int,
        hop: int,
        sample_rate_hz: float | None,
        channel_map: dict[str, str] | None = None,
    ) -> None:
        self.channels = list(channels)
        self.source_channels = [(channel_map or {}).get(c, c) for c in channels]
        self.window, self.hop, self.rate = window, hop, sample_rate_hz
        capacity = max(2 * window, window + hop, 4096)  # room for many windows per copy
        # Windows are copied out in batches of about 1 MB: fast at hop 1, bounded in memory.
        self._batch = max(1, (1 << 20) // (window * len(channels) * 8))
        self._buffer = np.empty((capacity, len(channels)), dtype=np.float64)
        self._times = np.empty(capacity, dtype=np.float64)
        self._fill = 0  # samples in the buffer
        self._next_start = 0  # buffer index where the next window starts
        self._last_t: float | None = None
        self._last_seq: int | None = None
        self.counters: Counter[str] = Counter()
        self._column_cache: tuple[tuple[str, ...], list[int]] | None = None

    def reset(self) -> None:
        self._fill = 0
        self._next_start = 0
        self._last_t = None
        self._last_seq = None

    def _columns(self, channels: tuple[str, ...]) -> list[int] | None:
        if self._column_cache is not None and self._column_cache[0] == channels:
            return self._column_cache[1]
        try:
            columns = [channels.index(name) for name in self.source_channels]
        except ValueError:
            return None
        self._column_cache = (channels, columns)
        return columns

    def _reject(self, reason: str) -> list[Window]:
        self.counters[reason] += 1
        return []

    def push(self, block: SampleBlock) -> list[Window]:
        """Add a block; return the windows it completes (possibly none)."""
        columns = self._columns(block.channels)
        if columns is None:
            return self._reject("missing_channels")
        rate_given = self.rate is not None and block.rate_hz is not None
        if rate_given and abs(block.rate_hz - self.rate) > 1e-6 * self.rate:  # type: ignore[operator]
            return self._reject("sample_rate_mismatch")
        times = self._block_times(block)
        if self._last_t is not None:
            if times[0] <= self._last_t:
                return self._reject("out_of_order")
            broken_seq = (
                block.seq is not None
                and self._last_seq is not None
                and block.seq != self._last_seq + 1
            )
            gap = (
                self.rate is not None and (times[0] - self._last_t) * self.rate > 1 + GAP_TOLERANCE
            )
            if broken_seq or gap:
                self.counters["gap_reset"] += 1
                self.reset()
        steps = np.diff(times)
        if np.any(steps <= 0):
            return self._reject("out_of_order")
        self._last_t = float(times[-1])
        self._last_seq = block.seq
        values = (
            block.values
            if columns == list(range(len(block.channels)))
            else block.values[:, columns]
        )
        if self.rate is None:
            return self._append(values, times)
        # A recording with holes: each gap-free stretch is windowed on its own.
        out: list[Window] = []
        start = 0
        for gap in np.flatnonzero(steps * self.rate > 1 + GAP_TOLERANCE) + 1:
            out += self._append(values[start:gap], times[start:gap])
            self.counters["gap_reset"] += 1
            self._fill = self._next_start = 0
            start = gap
        return out + self._append(values[start:], times[start:])

    def _block_times(self, block: SampleBlock) -> np.ndarray:
        if block.timestamps is not None:
            return block.timestamps
        if block.rate_hz:
            return block.t0 + np.arange(len(block)) / block.rate_hz
        return (
            np.full(len(block), block.t0) if len(block) == 1 else np.arange(len(block)) + block.t0
        )

    def _append(self, values: np.ndarray, times: np.ndarray) -> list[Window]:
        out: list[Window] = []
        offset = 0
        n = values.shape[0]
        while offset < n:
            room = self._buffer.shape[0] - self._fill
            if room == 0:
                self._compact()
                room = self._buffer.shape[0] - self._fill
            take = min(room, n - offset)
            self._buffer[self._fill : self._fill + take] = values[offset : offset + take]
            self._times[self._fill : self._fill + take] = times[offset : offset + take]
            self._fill += take
            offset += take
            starts = range(self._next_start, self._fill - self.window + 1, self.hop)
            for first in range(0, len(starts), self._batch):
                out += self._cut(starts[first : first + self._batch])
            if len(starts):
                self._next_start = starts[-1] + self.hop
        return out

    def _cut(self, starts: range) -> list[Window]:
        """Copy all windows that are complete now in one go (cheap even at hop 1)."""
        rows, cols = self._buffer.strides
        view = np.lib.stride_tricks.as_strided(
            self._buffer[starts.start :],
            shape=(len(starts), self.window, self._buffer.shape[1]),
            strides=(rows * self.hop, rows, cols),
            writeable=False,
        )
        batch = view.copy()
        first = self._times[starts.start : starts.stop : self.hop].tolist()
        last = self._times[starts.start + self.window - 1 :: self.hop][: len(starts)].tolist()
        return [Window(batch[i], first[i], last[i]) for i in range(len(starts))]

    def _compact(self) -> None:
        """Move the unfinished tail to the front so the buffer never grows."""
        keep_from = min(self._next_start, self._fill)
        kept = self._fill - keep_from
        self._buffer[:kept] = self._buffer[keep_from : self._fill]
        self._times[:kept] = self._times[keep_from : self._fill]
        self._fill = kept
        self._next_start -= keep_from
