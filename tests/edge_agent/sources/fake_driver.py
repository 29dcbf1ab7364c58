"""A stand-in local driver, loaded through the real entry-point mechanism in test_plugins."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np

from edge_agent.stream.blocks import SampleBlock


class CountingDriver:
    def __init__(self, source_id: str, rows: int) -> None:
        self.id = source_id
        self.rows = rows
        self.counters: Counter[str] = Counter()

    def run(self, emit, stop: threading.Event) -> None:
        values = np.arange(self.rows * 2, dtype=np.float64).reshape(self.rows, 2)
        emit(SampleBlock(self.id, ("a", "b"), values, 1.0, timestamps=1.0 + np.arange(self.rows)))
        self.counters["blocks"] += 1


def make(source_id: str, options: dict) -> CountingDriver:
    return CountingDriver(source_id, int(options["rows"]))


class FlakyDriver:
    """A real-time vibration driver whose first run crashes after `crash_after` blocks, as a
    buggy driver would; later runs keep going."""

    def __init__(self, source_id: str, crash_after: int) -> None:
        from edge_agent.config.sources import SimulatorSourceConfig
        from edge_agent.sources.simulator import SimulatorSource

        self.id = source_id
        self.counters: Counter[str] = Counter()
        self.crash_after = crash_after
        self._inner = SimulatorSource(
            SimulatorSourceConfig(kind="simulator", id=source_id, block_samples=2048)
        )

    def run(self, emit, stop: threading.Event) -> None:
        self.counters["runs"] += 1
        blocks = 0

        def counting(block: SampleBlock) -> None:
            nonlocal blocks
            blocks += 1
            if self.counters["runs"] == 1 and blocks > self.crash_after:
                raise RuntimeError("driver bug: lost the bus")
            emit(block)

        self._inner.run(counting, stop)


def make_flaky(source_id: str, options: dict) -> FlakyDriver:
    return FlakyDriver(source_id, int(options["crash_after"]))


class WallStampedRows:
    """A real-time driver that stamps each row with the system clock as it reads it, as an ADC
    or fieldbus driver on the device does: rows from a whitespace table, cycled, every
    `period_s`. The clock is edge_agent.clock.CLOCK.wall, so a test can step it."""

    def __init__(self, source_id: str, path: str, columns: list[int], names: list[str], period_s):
        self.id = source_id
        self.counters: Counter[str] = Counter()
        self.rows = np.loadtxt(path)[:, columns]
        self.names = tuple(names)
        self.period_s = float(period_s)

    def run(self, emit, stop: threading.Event) -> None:
        from edge_agent.clock import CLOCK

        index = 0
        while not stop.wait(self.period_s):
            row = self.rows[index % len(self.rows)][None, :]
            now = CLOCK.wall()
            emit(SampleBlock(self.id, self.names, row, now, timestamps=np.array([now])))
            index += 1
            self.counters["rows"] += 1


def make_wall_stamped(source_id: str, options: dict) -> WallStampedRows:
    return WallStampedRows(
        source_id,
        str(options["path"]),
        list(options["columns"]),  # type: ignore[arg-type]
        list(options["names"]),  # type: ignore[arg-type]
        options["period_s"],
    )
