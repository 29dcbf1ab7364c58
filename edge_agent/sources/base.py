"""The source interface: run until told to stop, handing sample blocks to `emit`.

A plugin (entry point group `edge_agent.sources`) is a callable
`factory(source_id: str, options: dict) -> Source`; see docs/agent.md.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from edge_agent.stream.blocks import SampleBlock

Emit = Callable[[SampleBlock], None]


class Source(Protocol):
    id: str
    counters: Counter[str]  # rejected input by reason, and other events worth reporting

    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Produce blocks until `stop` is set or the source is exhausted."""
        ...
