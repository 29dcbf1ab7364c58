"""Source threads under supervision, and the agent's health as subscribers see it.

Each source runs on its own thread behind a boundary. A source that crashes is restarted with
capped exponential backoff (a finite one, such as a replay, is reported failed instead: a restart
would repeat its data); a source that simply stops delivering is `idle`, reported per source,
and is not a fault, unless it is a steady source (a simulator, a replay), which is then `stuck`.
The supervisor's findings become `Health`: `online`, or `degraded` with the reasons, never
`online` while something keeps results from flowing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

from edge_agent.errors import EdgeError
from edge_agent.faults import Supervised
from edge_agent.sources.base import Emit, FiniteSource, Source, SteadySource
from edge_agent.stream.blocks import SampleBlock

log = logging.getLogger("edge_agent.supervisor")
SourceState = Literal["starting", "active", "idle", "stuck", "finished", "restarting", "failed"]
RESTART_MIN_S = 1.0


@dataclass(frozen=True)
class Health:
    state: Literal["online", "degraded"] = "online"
    reasons: tuple[str, ...] = ()

    @classmethod
    def from_reasons(cls, reasons: list[str]) -> Health:
        return cls("degraded" if reasons else "online", tuple(reasons))


@dataclass
class SourceSlot:
    source: Source
    thread: threading.Thread | None = None
    state: SourceState = "starting"
    last_block: float | None = None  # monotonic time of the last block handed over
    error: str | None = None
    crashed: bool = False
    restarts: int = 0
    restart_at: float = 0.0
    started: float = 0.0  # monotonic time of the last launch
    backoff_s: float = RESTART_MIN_S


class SourceRunner:
    """Runs every source on its own thread and keeps each one going."""

    def __init__(
        self, sources: list[Source], emit: Emit, idle_after_s: float, restart_max_s: float
    ) -> None:
        self.slots = [SourceSlot(s) for s in sources]
        self._emit = emit
        self.idle_after_s = idle_after_s
        self.restart_max_s = restart_max_s
        self.stop_event = threading.Event()

    def start(self) -> None:
        self.stop_event = threading.Event()
        for slot in self.slots:
            self._launch(slot)

    def _launch(self, slot: SourceSlot) -> None:
        slot.crashed, slot.error = False, None
        slot.started, slot.last_block = time.monotonic(), None
        slot.thread = threading.Thread(
            target=self._run, args=(slot,), name=f"source-{slot.source.id}", daemon=True
        )
        slot.thread.start()

    def _run(self, slot: SourceSlot) -> None:
        def emit(block: SampleBlock) -> None:
            slot.last_block = time.monotonic()
            self._emit(block)

        try:
            slot.source.run(emit, self.stop_event)
        except EdgeError as exc:
            slot.crashed, slot.error = True, str(exc)
        except Exception as exc:  # a driver bug must not take the agent down silently
            slot.crashed, slot.error = True, f"{type(exc).__name__}: {exc}"
            log.exception("source crashed", extra={"source": slot.source.id})

    def stop(self, timeout: float) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            if slot.thread is not None:
                slot.thread.join(max(0.0, deadline - time.monotonic()))

    @staticmethod
    def _running(slot: SourceSlot) -> bool:
        return slot.thread is not None and slot.thread.is_alive()

    @staticmethod
    def _failed(slot: SourceSlot) -> bool:
        """Crashed and finite: never restarted (it would repeat its data)."""
        return slot.crashed and isinstance(slot.source, FiniteSource) and slot.source.finite

    def exhausted(self) -> bool:
        """Every source ended on its own (a finished replay) or failed for good; read from the
        threads themselves, so the main loop can ask without running a whole check."""
        return all(
            not self._running(slot) and (not slot.crashed or self._failed(slot))
            for slot in self.slots
        )

    def failed(self) -> list[SourceSlot]:
        return [slot for slot in self.slots if not self._running(slot) and self._failed(slot)]

    def check(self) -> list[str]:
        """Update each source's state, restart crashed ones when their backoff has passed;
        return the problems (crashed, restarting, failed) as readable reasons."""
        now = time.monotonic()
        problems = []
        for slot in self.slots:
            source_id = slot.source.id
            if self._running(slot):
                if isinstance(slot.source, Supervised):
                    problems += [f"source {source_id}: {p}" for p in slot.source.supervise()]
                last = slot.last_block if slot.last_block is not None else slot.started
                quiet = now - last > self.idle_after_s
                if quiet and self._steady(slot):
                    self._transition(slot, "stuck")
                    problems.append(f"source {source_id} stuck: no samples while running")
                elif quiet:
                    self._transition(slot, "idle")
                else:
                    self._transition(slot, "active" if slot.last_block is not None else "starting")
                continue
            if slot.state in ("finished", "failed"):
                if slot.state == "failed":
                    problems.append(f"source {source_id} failed: {slot.error}")
                continue
            if not slot.crashed:
                self._transition(slot, "finished")
                continue
            if self._failed(slot):
                self._transition(slot, "failed")
                problems.append(f"source {source_id} failed: {slot.error}")
                continue
            if slot.state != "restarting":
                slot.restart_at = now + slot.backoff_s
                self._transition(slot, "restarting")
                log.error(
                    "source stopped; restarting",
                    extra={"source": source_id, "error": slot.error, "in_s": slot.backoff_s},
                )
            if now >= slot.restart_at and not self.stop_event.is_set():
                slot.restarts += 1
                slot.backoff_s = min(slot.backoff_s * 2, self.restart_max_s)
                self._transition(slot, "starting")
                self._launch(slot)
                log.warning(
                    "source restarted", extra={"source": source_id, "restarts": slot.restarts}
                )
            else:
                problems.append(f"source {source_id} stopped ({slot.error}); restarting")
        return problems

    def _transition(self, slot: SourceSlot, state: SourceState) -> None:
        if state == slot.state:
            return
        if state == "active" and slot.state in ("starting", "restarting"):
            slot.backoff_s = RESTART_MIN_S  # delivering again: the next crash starts over
        previous, slot.state = slot.state, state
        if state in ("idle", "stuck", "finished") or previous in ("idle", "stuck"):
            log.info(
                "source state", extra={"source": slot.source.id, "state": state, "was": previous}
            )

    @staticmethod
    def _steady(slot: SourceSlot) -> bool:
        return isinstance(slot.source, SteadySource) and slot.source.steady

    def stuck(self) -> list[str]:
        """Sources whose thread runs but delivers nothing although it should (a wedged driver)."""
        return [slot.source.id for slot in self.slots if slot.state == "stuck"]

    def states(self) -> dict[str, SourceState]:
        return {slot.source.id: slot.state for slot in self.slots}

    def restarts(self) -> int:
        return sum(slot.restarts for slot in self.slots)
