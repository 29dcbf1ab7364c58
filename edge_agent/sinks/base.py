"""What the pipeline needs from a sink: take an event, and close when the agent stops."""

from __future__ import annotations

from typing import Protocol

from edge_agent.events import Event


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Called after each batch of events (one sample block), so I/O is per block."""
        ...

    def close(self) -> None: ...
