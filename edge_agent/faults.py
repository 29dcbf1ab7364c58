"""One fault boundary for code that runs on threads the agent does not own (paho's network loop,
source drivers, command handlers): an exception there is counted, logged once per interval
with what and where, and never ends the thread."""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from edge_agent.logs import RateLimiter

F = TypeVar("F", bound=Callable[..., Any])


class Boundary:
    def __init__(self, log: logging.Logger, limiter: RateLimiter, counters: Counter[str]) -> None:
        self.log, self.limiter, self.counters = log, limiter, counters

    def wrap(self, where: str, fn: F, active: Callable[[], bool] | None = None) -> F:
        """`fn` behind the boundary; with `active`, a call is skipped once it says False (the
        callbacks of a replaced MQTT client go quiet)."""

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if active is not None and not active():
                return None
            try:
                return fn(*args, **kwargs)
            except Exception:
                self.counters[f"faults:{where}"] += 1
                if self.limiter.allow(f"fault:{where}"):
                    self.log.exception(
                        "unexpected error; carrying on",
                        extra={"where": where, "count": self.counters[f"faults:{where}"]},
                    )
                return None

        return guarded  # type: ignore[return-value]


@runtime_checkable
class Supervised(Protocol):
    """Owns threads or connections the agent's supervisor must watch (a sink or a source)."""

    def supervise(self) -> list[str]:
        """Recover what stopped; return what is wrong now (empty when all is well)."""
        ...

    def stuck_for(self) -> float:
        """Seconds since a recovery that has shown no sign of working yet (no progress, and no
        clear outcome such as a refused or failed connection); 0 when nothing is pending. The
        service watchdog stops when this passes the deadline: restarting is all that is left."""
        ...


class Recovery:
    """When the current unconfirmed recovery began (monotonic), for `stuck_for`."""

    def __init__(self) -> None:
        self.since: float | None = None

    def started(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    def confirmed(self) -> None:
        self.since = None

    def stuck_for(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since
