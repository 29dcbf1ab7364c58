"""JSON lines to standard output or a file, one event per line, flushed after each block."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import orjson

from edge_agent.events import Event


class JsonlSink:
    def __init__(self, path: Path | str = "-", fsync: bool = False) -> None:
        self._own = str(path) != "-"
        self._handle: BinaryIO = open(path, "ab") if self._own else sys.stdout.buffer  # noqa: SIM115
        self._fsync = fsync and self._own

    def emit(self, event: Event) -> None:
        self._handle.write(
            orjson.dumps(event.payload(time.time()), option=orjson.OPT_APPEND_NEWLINE)
        )

    def emit_many(self, events: Sequence[Event]) -> None:
        """One write per block: the lines of all its events, stamped with one clock reading."""
        now, dumps, newline = time.time(), orjson.dumps, orjson.OPT_APPEND_NEWLINE
        self._handle.write(
            b"".join([dumps(event.payload(now), option=newline) for event in events])
        )

    def flush(self) -> None:
        self._handle.flush()
        if self._fsync:
            os.fsync(self._handle.fileno())

    def close(self, timeout: float = 0.0) -> None:
        self.flush()
        if self._own:
            self._handle.close()
