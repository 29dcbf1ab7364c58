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
