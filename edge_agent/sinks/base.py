"""What the pipeline needs from a sink, and the optional capabilities the agent looks for.

Capabilities are typed protocols checked with isinstance, so a sink states what it can do by
having the methods, and the agent never probes attributes by name.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edge_agent.events import Event

if TYPE_CHECKING:
    from edge_agent.telemetry import Histogram


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Called after each batch of sample blocks, so durable I/O is paid per batch."""
        ...

    def close(self, timeout: float) -> None:
        """Deliver what can be delivered within `timeout` seconds, then release everything."""
        ...


@runtime_checkable
class EmitsBatches(Protocol):
    """Takes the events of one block at once (one serialisation pass, one write)."""

    def emit_many(self, events: Sequence[Event]) -> None: ...


def emit_events(sink: Sink, events: Sequence[Event]) -> None:
    """Hand `events` to `sink` in order: in one call when it takes batches, else one by one."""
    if _takes_batches(type(sink)):
        sink.emit_many(events)  # type: ignore[attr-defined]
    else:
        for event in events:
            sink.emit(event)


@cache
def _takes_batches(kind: type) -> bool:
    """Per sink class, once: a runtime protocol check costs ~6 us, paid per batch otherwise."""
    return issubclass(kind, EmitsBatches)


@runtime_checkable
class KeepsSequence(Protocol):
    """Remembers each model's last result sequence number across restarts."""

    def sequence(self, model: str) -> int: ...


@runtime_checkable
class ReportsStats(Protocol):
    def stats(self) -> dict[str, Any]: ...


@runtime_checkable
class TimesDelivery(Protocol):
    """Measures how long a message waits from being handed over to being acknowledged."""

    publish_ack_ms: Histogram


@runtime_checkable
class PublishesHealth(Protocol):
    """Carries the agent's status, metrics and health events to subscribers."""

    @property
    def metrics_interval_s(self) -> float: ...

    def publish_metrics(self, metrics: dict[str, Any]) -> None: ...

    def publish_status(self, models_changed: bool = False) -> None: ...

    def publish_health_event(self, event: dict[str, Any]) -> None: ...


@runtime_checkable
class Connects(Protocol):
    """Talks to a remote end; `first_attempt` is set once the first connection attempt has an
    outcome (connected, refused or failed), which is when the service reports READY."""

    first_attempt: threading.Event
