"""Built-in source: the vibration simulator, paced in real time or as fast as possible."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace

from edge_agent.config.sources import SimulatorSourceConfig
from edge_agent.sim.vibration import CHANNELS, MachineConditions, VibrationSimulator
from edge_agent.sources.base import Emit
from edge_agent.stream.blocks import SampleBlock


class SimulatorSource:
    def __init__(self, config: SimulatorSourceConfig, start_time: float | None = None) -> None:
        self.id = config.id
        self.config = config
        self.finite = config.duration_s is not None
        self.steady = True
        self.counters: Counter[str] = Counter()
        self.sim = VibrationSimulator(
            MachineConditions(
                fault=config.fault, severity=config.severity, shaft_hz=config.shaft_hz
            ),
            config.sample_rate_hz,
            seed=config.seed,
        )
        self.start_time = time.time() if start_time is None else start_time
        self._schedule = sorted(config.schedule, key=lambda s: s.at_s)
        self._lock = threading.Lock()

    def set_fault(self, fault: str, severity: float = 1.0) -> None:
        """Switch the simulated fault now (also used by the command topic)."""
        with self._lock:
            self.sim.set_conditions(replace(self.sim.conditions, fault=fault, severity=severity))
        self.counters[f"fault_set:{fault}"] += 1

    def run(self, emit: Emit, stop: threading.Event) -> None:
        rate, n = self.config.sample_rate_hz, self.config.block_samples
        seq = 0
        while not stop.is_set():
            elapsed = self.sim.samples_emitted / rate
            if self.config.duration_s is not None and elapsed >= self.config.duration_s:
                return
            while self._schedule and self._schedule[0].at_s <= elapsed:
                step = self._schedule.pop(0)
                self.set_fault(step.fault, step.severity)
            t0 = self.start_time + elapsed
            if self.config.realtime:
                wait = t0 + n / rate - time.time()
                if wait > 0 and stop.wait(wait):
                    return
            with self._lock:
                values = self.sim.next_block(n)
            emit(
                SampleBlock(self.id, CHANNELS, values.astype("float64"), t0, rate_hz=rate, seq=seq)
            )
            seq += 1
