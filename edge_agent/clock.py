"""Wall-clock time that does not jump when the system clock is stepped.

A Raspberry Pi has no real-time clock: it boots with a stale time and NTP steps it later, by
hours; an operator may also set it back. Timestamps the agent publishes follow the system
clock, but ages (the spool's age limit) use `steady()` (the wall time at start, advanced by the
monotonic clock) and "not in the future" checks use `latest()` (whichever is later), so a step
in either direction neither purges the spool nor rejects good sensor data.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SteadyWall:
    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wall, self.monotonic = wall, monotonic
        self._wall0, self._monotonic0 = wall(), monotonic()

    def steady(self) -> float:
        """Unix seconds that advance with real elapsed time and ignore clock steps."""
        return self._wall0 + (self.monotonic() - self._monotonic0)

    def latest(self) -> float:
        return max(self.wall(), self.steady())

    def stepped(self) -> float:
        """How far the system clock has been stepped since start (seconds, signed)."""
        return self.wall() - self.steady()


CLOCK = SteadyWall()
