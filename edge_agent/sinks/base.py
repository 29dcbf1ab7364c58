"""What the pipeline needs from a sink: take an event, and close when the agent stops."""

from __future__ import annotations

from typing import Protocol

from edge_agent.events import Event


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Called after each batch of sample blocks, so durable I/O is paid per batch."""
        ...

    def close(self) -> None: ...
