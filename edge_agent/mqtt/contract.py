"""The MQTT payload contract as schemas (docs/mqtt.md). The agent builds payloads from its
events; tests validate real payloads against these models, and `python -m edge_agent.mqtt.contract`
writes the JSON Schema files in docs/schemas/."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from edge_agent.schema import StrictModel
from edge_agent.stream.inputcheck import Condition as InputCondition


class ModelInfo(StrictModel):
    id: str
    name: str
    version: str
    sha256: str | None = None


class Window(StrictModel):
    start: float = Field(description="Measurement time of the first sample (unix s).")
    end: float = Field(description="Measurement time of the last sample (unix s).")


TASK_FIELDS = {
    "classification": ("label", "confidence", "probabilities"),
    "anomaly": ("score", "threshold", "is_anomaly"),
    "rul": ("rul", "units"),
}
OPTIONAL_TASK_FIELDS = {"anomaly": ("raw_score",)}  # present only when the manifest says so


class ResultPayload(StrictModel):
    """Topic `<prefix>/<device>/<model>/result`, QoS 1, not retained. De-duplicate on
    (device, model.id, seq)."""

    schema_version: Literal[1]
    type: Literal["result"]
    device: str
    model: ModelInfo
    seq: int = Field(ge=1, description="Per model, increasing, continued across restarts.")
    window: Window
    published_at: float | None = Field(description="When this copy was sent (unix s).")
    task: Literal["classification", "anomaly", "rul"]
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    score: float | None = None
    threshold: float | None = None
    is_anomaly: bool | None = None
    raw_score: float | None = Field(
        default=None,
        description="The window's unsmoothed score, when the model smooths scores "
        "(`score` is then the smoothed value compared with `threshold`).",
    )
    rul: float | None = None
    units: str | None = None
    latency_ms: float
    historical: bool = Field(description="True when replayed from the spool after an outage.")

    @model_validator(mode="after")
    def _answers_its_task(self) -> ResultPayload:
        """Each task answers with its own fields, all present, and with no other task's."""
        own = TASK_FIELDS[self.task]
        missing = [name for name in own if getattr(self, name) is None]
        foreign = [
            name
            for task in TASK_FIELDS
            if task != self.task
            for name in (*TASK_FIELDS[task], *OPTIONAL_TASK_FIELDS.get(task, ()))
            if getattr(self, name) is not None
        ]
        if missing:
            raise ValueError(f"a {self.task} result needs {', '.join(missing)}")
        if foreign:
            raise ValueError(f"a {self.task} result cannot carry {', '.join(foreign)}")
        return self


class AlarmPayload(StrictModel):
    """Topic `<...>/<model>/alarm` (retained: the current state) and `<...>/<model>/alarm/event`
    (not retained: each transition)."""

    schema_version: Literal[1]
    type: Literal["alarm"]
    device: str
    model: ModelInfo
    state: Literal["raised", "cleared"]
    severity: Literal["warning", "critical"] | None
    since: float
    reason: str
    seq: int = Field(description="The result seq that caused this transition.")
    published_at: float | None
    escalated: bool | None = None
    acknowledged: bool | None = None
    acknowledged_by: str | None = None
    historical: bool


class InputChange(StrictModel):
    channel: str
    condition: InputCondition
    state: Literal["raised", "cleared"]
    value: float = Field(description="The figure that decided it (see docs/mqtt.md).")
    limit: float = Field(description="The configured limit it was compared against.")


class InputHealthPayload(StrictModel):
    """Topic `<...>/<model>/input` (retained: the current per-channel state) and
    `<...>/<model>/input/event` (not retained: each change)."""

    schema_version: Literal[1]
    type: Literal["input_health"]
    device: str
    model: ModelInfo
    seq: int = Field(ge=0, description="The model's results so far when the window was checked.")
    window_end: float = Field(description="Measurement time of the checked window's last sample.")
    healthy: bool = Field(description="No condition active on any channel.")
    channels: dict[str, list[InputCondition]] = Field(
        description="Every model channel with its active conditions (empty: healthy)."
    )
    change: InputChange | None = Field(
        description="What changed; null on the state published when the checks start."
    )
    published_at: float | None
    historical: bool


class DeploymentPayload(StrictModel):
    """Topic `<...>/<model>/deployment` (retained: the latest step) and
    `<...>/<model>/deployment/event` (each step of a model update)."""

    schema_version: Literal[1]
    type: Literal["deployment"]
    device: str
    model: str = Field(description="The model binding's id (topic level).")
    state: Literal[
        "accepted",
        "downloaded",
        "verified",
        "shadowing",
        "awaiting_approval",
        "promoted",
        "rolled_back",
        "refused",
    ]
    version: str | None = Field(description="The version this step is about.")
    running: str = Field(description="The version serving results after this step.")
    reason: str
    agreement: dict[str, Any] | None = Field(
        default=None, description="Shadow run comparison (shadowing results, promotion)."
    )
    source: str | None = None
    swap_ms: float | None = Field(
        default=None, description="promoted: how long the swap took (pointer fsyncs included)."
    )
    ts: float
    published_at: float | None
    historical: bool


class StatusModel(StrictModel):
    id: str
    name: str
    version: str
    sha256: str
    task: str
    backend: str
    input_checks: bool = Field(
        default=False, description="Per-channel input health is published on `<model>/input`."
    )
    units: str | None = None


class StatusPayload(StrictModel):
    """Topic `<prefix>/<device>/status`, QoS 1, retained: birth on every connect; the Last Will
    (and a clean shutdown) sets {"state": "offline", "device": ...}."""

    schema_version: Literal[1] | None = None
    state: Literal["online", "degraded", "offline"]
    reasons: list[str] | None = Field(
        default=None, description="Why the agent is degraded (only then present)."
    )
    device: str
    agent_version: str | None = None
    started_at: float | None = None
    models: list[StatusModel] | None = None


class LatencyHistogram(StrictModel):
    """One latency histogram in milliseconds (edge_agent.telemetry). Buckets, count and sum run
    since the start (or the reload that made the model or source); p50/p99 cover the last
    metrics interval."""

    buckets: list[tuple[float | None, int]] = Field(
        description="[le, count] for each non-empty bucket: observations above the previous "
        "bound and at most le ms (not cumulative). le null: above the largest bound, 60000 ms. "
        "Bounds: 0.025 ... 60000 ms in 1-2.5-5 steps."
    )
    count: int = Field(ge=0)
    sum: float = Field(ge=0, description="Sum of the observations, ms.")
    p50: float | None = Field(
        description="Median of the observations since the previous metrics message, estimated "
        "from the buckets (linear inside a bucket); null if there were none."
    )
    p99: float | None = Field(description="99th percentile, as p50.")


class Histograms(StrictModel):
    inference_ms: dict[str, LatencyHistogram] = Field(
        description="Per model id: features + int8 invoke + interpretation of one window."
    )
    end_to_end_ms: dict[str, LatencyHistogram] = Field(
        description="Per model id: from the arrival at the agent of the block that completed a "
        "window to its result accepted by every sink (before the spool's commit)."
    )
    queue_wait_ms: dict[str, LatencyHistogram] = Field(
        description="Per source id: from a block's arrival to its dispatch to the models."
    )
    publish_ack_ms: dict[str, LatencyHistogram] = Field(
        description="Per sink (class name): from a QoS 1 message's spool put to its PUBACK."
    )


class MetricsPayload(StrictModel):
    """Topic `<prefix>/<device>/metrics`, QoS 0, every `metrics_interval_s`: counters, gauges
    and latency histograms (every key: docs/mqtt.md#metrics)."""

    model_config = ConfigDict(extra="allow")
    device: str
    ts: float
    state: Literal["online", "degraded"]
    reasons: list[str]
    uptime_s: float
    agent: dict[str, Any]
    sources: dict[str, dict[str, Any]]
    models: dict[str, dict[str, Any]]
    sinks: dict[str, dict[str, Any]]
    queue_blocks: int
    histograms: Histograms | None = Field(
        default=None, description="Latency histograms (absent from agents before they existed)."
    )


class CommandReply(StrictModel):
    """Topic `<prefix>/<device>/cmd/<verb>/reply` (or the request's MQTT v5 response topic)."""

    model_config = ConfigDict(extra="allow")
    command: str
    ok: bool
    error: str | None = None


class HealthEvent(StrictModel):
    """Topic `<prefix>/<device>/health/event`, QoS 1, not retained: each change of the agent's
    health (the retained status carries the current state)."""

    device: str
    ts: float
    state: Literal["online", "degraded"]
    severity: Literal["critical", "info"]
    reasons: list[str] = Field(description="What is wrong now; empty when back to normal.")
    previous_reasons: list[str]
    published_at: float | None = None
    historical: bool | None = None


SCHEMAS = {
    "result": ResultPayload,
    "alarm": AlarmPayload,
    "input-health": InputHealthPayload,
    "deployment": DeploymentPayload,
    "status": StatusPayload,
    "metrics": MetricsPayload,
    "command-reply": CommandReply,
    "health-event": HealthEvent,
}


def write_schemas(folder: Path) -> None:
    for name, model in SCHEMAS.items():
        text = json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        (folder / f"{name}.v1.schema.json").write_text(text)


if __name__ == "__main__":
    write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas"))
