"""The source interface: run until told to stop, handing sample blocks to `emit`.

A plugin (entry point group `edge_agent.sources`) is a callable
`factory(source_id: str, options: dict) -> Source`; see docs/agent.md.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from edge_agent.stream.blocks import SampleBlock

Emit = Callable[[SampleBlock], None]


class Source(Protocol):
    id: str
    counters: Counter[str]  # rejected input by reason, and other events worth reporting

    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Produce blocks until `stop` is set or the source is exhausted."""
        ...


@runtime_checkable
class FiniteSource(Protocol):
    """A source that may end on its own (a replay, a simulator with a duration). A finite source
    that crashes is not restarted: it would repeat what it already sent."""

    finite: bool


@runtime_checkable
class AcceptsFaults(Protocol):
    """A simulated machine whose fault can be switched at run time (the `fault` command)."""

    def set_fault(self, fault: str, severity: float = 1.0) -> None: ...


@runtime_checkable
class SteadySource(Protocol):
    """Produces blocks at a steady pace whenever it runs (a simulator, a replay): silence from it
    means it is stuck, not that the machine is quiet."""

    steady: bool
