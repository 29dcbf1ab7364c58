"""Typed events the pipeline emits; sinks turn them into bytes (JSON lines, MQTT payloads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class ModelRef:
    id: str  # topic id of this model binding
    name: str
    version: str
    sha256: str


@dataclass(slots=True)
class Result:
    """One window's answer. `output` holds the task's fields (label, score, rul ...).

    Not frozen, unlike the other events: one is built per window, and a frozen dataclass's
    __init__ costs four times as much (0.97 against 0.22 us); nothing changes one after it is
    emitted."""

    device: str
    model: ModelRef
    seq: int
    window_start: float
    window_end: float
    task: str
    output: dict[str, Any]
    latency_ms: float
    historical: bool = False

    def payload(self, published_at: float | None) -> dict[str, Any]:
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "type": "result",
            "device": self.device,
            "model": {
                "id": self.model.id,
                "name": self.model.name,
                "version": self.model.version,
                "sha256": self.model.sha256,
            },
            "seq": self.seq,
            "window": {"start": self.window_start, "end": self.window_end},
            "published_at": published_at,
            "task": self.task,
            **self.output,
            "latency_ms": self.latency_ms,
            "historical": self.historical,
        }


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """A transition of one model's alarm: raised (with severity) or cleared."""

    device: str
    model: ModelRef
    state: Literal["raised", "cleared"]
    severity: Literal["warning", "critical"] | None
    since: float  # measurement time the current state began
    reason: str
    seq: int  # result seq that caused the transition
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self, published_at: float | None) -> dict[str, Any]:
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "type": "alarm",
            "device": self.device,
            "model": {"id": self.model.id, "name": self.model.name, "version": self.model.version},
            "state": self.state,
            "severity": self.severity,
            "since": self.since,
            "reason": self.reason,
            "seq": self.seq,
            "published_at": published_at,
            **self.details,
            "historical": False,
        }


@dataclass(frozen=True, slots=True)
class InputHealthEvent:
    """One model's per-channel input health: a change of one condition, or (change None) the
    state when its checks start, so a retained copy from an earlier run never lingers."""

    device: str
    model: ModelRef
    seq: int  # results of this model so far (the next result's seq is seq + 1)
    window_end: float  # measurement time of the window that was checked
    channels: dict[str, list[str]]  # active conditions per channel; empty lists: healthy
    change: dict[str, Any] | None = None  # channel, condition, state, value, limit

    def payload(self, published_at: float | None) -> dict[str, Any]:
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "type": "input_health",
            "device": self.device,
            "model": {"id": self.model.id, "name": self.model.name, "version": self.model.version},
            "seq": self.seq,
            "window_end": self.window_end,
            "healthy": not any(self.channels.values()),
            "channels": self.channels,
            "change": self.change,
            "published_at": published_at,
            "historical": False,
        }


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    """A step of a model update: accepted, downloaded, verified, shadowing, awaiting_approval,
    promoted, rolled_back or refused (with why), for the model binding `model_id`."""

    device: str
    model_id: str
    state: str
    version: str | None  # the version this step is about
    running: str  # the version serving results after this step
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0

    def payload(self, published_at: float | None) -> dict[str, Any]:
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "type": "deployment",
            "device": self.device,
            "model": self.model_id,
            "state": self.state,
            "version": self.version,
            "running": self.running,
            "reason": self.reason,
            **self.details,
            "ts": self.ts,
            "published_at": published_at,
            "historical": False,
        }


Event = Result | AlarmEvent | InputHealthEvent | DeploymentEvent
