"""Replaying a recording (CSV/NPZ) in real time, accelerated, or as fast as possible.

The file is read with the reader training uses (edge_agent/recording.py): delimiter sniffed or
given, times as unix seconds or date-times, or the row index at `sample_rate_hz`. Only the
columns the bound models read are parsed (their manifests' channels after `channel_map`, plus
the time column), so a label or any other column is ignored by name.

Blocks never straddle a step back of the recording's clock: the block after one is marked
`clock_stepped_back`, so each model's windower restarts there and counts it, as training splits
its segments there. Every block carries the source's `max_gap`: shorter time steps are bridged,
longer ones restart the window (counted by the windower).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.config.sources import ReplaySourceConfig
from edge_agent.recording import TimeBreaks, column_names, read_recording, time_breaks
from edge_agent.sources.base import Emit
from edge_agent.stream.blocks import SampleBlock

log = logging.getLogger("edge_agent.sources.replay")


@dataclass(frozen=True)
class Loaded:
    """A recording ready to replay; `breaks` is None when its times come from the row index."""

    channels: tuple[str, ...]
    values: np.ndarray  # (n, c)
    times: np.ndarray  # (n,) unix seconds
    breaks: TimeBreaks | None


def load_recording(config: ReplaySourceConfig, columns: Sequence[str] | None = None) -> Loaded:
    """Read the recording with every value checked.

    The columns read are `config.channels` if set, else `columns` (what the bound models need),
    else every column but the time column. Without a time column in the file (or with
    time = 'index') row i is at i / sample_rate_hz, or i seconds for per-cycle data."""
    available = column_names(config.path, config.delimiter)
    time_column = config.time_source()
    has_time = time_column is not None and time_column in available
    if config.channels:
        channels = list(config.channels)
    elif columns:
        channels = list(dict.fromkeys(columns))
    else:
        channels = [c for c in available if c != config.time_column]
    recording = read_recording(
        config.path,
        channels,
        time=time_column if has_time else None,
        options=config.read_options(),
    )
    values = np.stack([recording.columns[c] for c in channels], axis=1)
    breaks = None
    if recording.times is not None:
        times = recording.times
        # Gaps are judged at the configured rate, else at the recording's median step: what a
        # model at that rate would see (only reported; each model's windower decides).
        forward = np.diff(times)[np.diff(times) > 0]
        rate = config.sample_rate_hz or (1.0 / np.median(forward) if forward.size else None)
        breaks = time_breaks(times, rate, config.max_gap)
    elif config.sample_rate_hz:
        times = np.arange(len(values)) / config.sample_rate_hz
    else:
        times = np.arange(len(values), dtype=np.float64)  # per-cycle data: one row per cycle
    return Loaded(tuple(channels), values, times, breaks)


class ReplaySource:
    def __init__(self, config: ReplaySourceConfig, columns: Sequence[str] | None = None) -> None:
        """`columns`: what the models bound to this source read (see `load_recording`)."""
        self.id = config.id
        self.config = config
        self.finite = not config.loop
        self.steady = True
        self.counters: Counter[str] = Counter()
        loaded = load_recording(config, columns)
        self.channels, self.values, self.times = loaded.channels, loaded.values, loaded.times
        self.breaks = loaded.breaks
        n, size = len(self.values), config.block_samples
        backs = self.breaks.backs.tolist() if self.breaks is not None else []
        # (first row, end row, clock stepped back before it): no block straddles a step back.
        self.blocks: list[tuple[int, int, bool]] = []
        for start, stop in zip([0, *backs], [*backs, n]):
            self.blocks += [
                (a, min(a + size, stop), a == start > 0) for a in range(start, stop, size)
            ]
        if self.breaks is not None:
            self.counters["time_steps_back"] = len(self.breaks.backs)
            if config.max_gap is not None:
                self.counters["time_gaps_split"] = len(self.breaks.gaps)
                self.counters["time_gaps_bridged"] = self.breaks.bridged
            self._announce()

    def describe(self) -> str | None:
        """How the recording's clock runs, or None when it is regular (or the row index)."""
        breaks = self.breaks
        if breaks is None or not (len(breaks.gaps) or len(breaks.backs) or breaks.bridged):
            return None
        return f"{len(self.values)} rows: {breaks.summary()}"

    def _announce(self) -> None:
        text = self.describe()
        if text is None:
            return
        extra = {"source": self.id, "path": str(self.config.path)}
        assert self.breaks is not None
        if len(self.breaks.gaps) and self.config.max_gap is None:
            log.warning(
                f"replay {self.id}: {self.config.path}: {text}, judged at its median step; a "
                "model with a sample rate restarts its window at each gap: set max_gap "
                "(seconds) to bridge shorter ones",
                extra=extra,
            )
        else:
            log.info(f"replay {self.id}: {self.config.path}: {text}", extra=extra)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        rate = self.config.sample_rate_hz
        n = len(self.values)
        offset_total = 0.0
        while not stop.is_set():
            started = time.time()
            for a, b, stepped_back in self.blocks:
                times = self.times[a:b] + offset_total
                if self.config.speed is not None:
                    due = started + (times[-1] - self.times[0] - offset_total) / self.config.speed
                    wait = due - time.time()
                    if wait > 0 and stop.wait(wait):
                        return
                if stop.is_set():
                    return
                emit(
                    SampleBlock(
                        self.id,
                        self.channels,
                        self.values[a:b],
                        float(times[0]),
                        rate_hz=rate,
                        timestamps=times,
                        max_gap_s=self.config.max_gap,
                        clock_stepped_back=stepped_back,
                    )
                )
            if not self.config.loop:
                return
            # A loop continues the clock after the recording's span, so it never goes back.
            span = self.times[-1] - self.times[0]
            step = 1.0 / rate if rate else (span / max(n - 1, 1))
            offset_total += span + step
