"""Every event to every sink: a sink that fails (a full disk under a JSON-lines file, say) is
counted and logged once per interval, and neither the pipeline nor the other sinks notice."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence

from edge_agent.events import Event
from edge_agent.logs import RateLimiter
from edge_agent.sinks.base import Sink, emit_events

log = logging.getLogger("edge_agent.sinks")


class Fanout:
    def __init__(self, sinks: Sequence[Sink], counters: Counter[str], limiter: RateLimiter) -> None:
        self.sinks = list(sinks)
        self.counters, self.limiter = counters, limiter

    def _failed(self, sink: Sink, action: str, exc: Exception) -> None:
        key = f"sink_errors:{type(sink).__name__}"
        self.counters[key] += 1
        if self.limiter.allow(f"{key}:{action}"):
            log.error(
                "sink failed; results kept flowing to the other sinks",
                extra={
                    "sink": type(sink).__name__,
                    "action": action,
                    "error": f"{type(exc).__name__}: {exc}",
                    "count": self.counters[key],
                },
            )

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception as exc:
                self._failed(sink, "emit", exc)

    def emit_many(self, events: Sequence[Event]) -> None:
        for sink in self.sinks:
            try:
                emit_events(sink, events)
            except Exception as exc:
                self._failed(sink, "emit", exc)

    def flush(self) -> None:
        for sink in self.sinks:
            try:
                sink.flush()
            except Exception as exc:
                self._failed(sink, "flush", exc)

    def close(self, timeout: float) -> None:
        """Close each sink within what is left of one shared `timeout`."""
        deadline = time.monotonic() + timeout
        for sink in self.sinks:
            try:
                sink.close(max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                self._failed(sink, "close", exc)
