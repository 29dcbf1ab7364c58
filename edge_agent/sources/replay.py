"""Replaying a recording (CSV/NPZ) in real time, accelerated, or as fast as possible."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np

from edge_agent.config.sources import ReplaySourceConfig
from edge_agent.recording import column_names, read_columns
from edge_agent.sources.base import Emit
from edge_agent.stream.blocks import SampleBlock


def load_recording(config: ReplaySourceConfig) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(channels, values (n, c), timestamps (n,)) with every value checked."""
    available = column_names(config.path)
    has_time = config.time_column in available
    channels = config.channels or [c for c in available if c != config.time_column]
    numeric = list(channels) + ([config.time_column] if has_time else [])
    columns = read_columns(config.path, numeric, [])
    values = np.stack([columns[c] for c in channels], axis=1)
    if has_time:
        times = columns[config.time_column]
    elif config.sample_rate_hz:
        times = np.arange(len(values)) / config.sample_rate_hz
    else:
        times = np.arange(len(values), dtype=np.float64)  # per-cycle data: one row per cycle
    return tuple(channels), values, times


class ReplaySource:
    def __init__(self, config: ReplaySourceConfig) -> None:
        self.id = config.id
        self.config = config
        self.finite = not config.loop
        self.steady = True
        self.counters: Counter[str] = Counter()
        self.channels, self.values, self.times = load_recording(config)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        n, size = len(self.values), self.config.block_samples
        rate = self.config.sample_rate_hz
        offset_total = 0.0
        while not stop.is_set():
            started = time.time()
            for a in range(0, n, size):
                b = min(a + size, n)
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
                    )
                )
            if not self.config.loop:
                return
            # A loop continues the clock after the recording's span, so it never goes back.
            span = self.times[-1] - self.times[0]
            step = 1.0 / rate if rate else (span / max(n - 1, 1))
            offset_total += span + step
