"""`[[sinks]]`: where results and alarms go. The pipeline never knows which transport it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field

from edge_agent.schema import Identifier, StrictModel


class JsonlSinkConfig(StrictModel):
    kind: Literal["jsonl"]
    path: Path = Field(default=Path("-"), description="'-' for standard output.")
    fsync: bool = Field(default=False, description="fsync after every line (durable, slower).")


class MqttSinkConfig(StrictModel):
    """Publish results and alarms through a durable on-disk spool (see docs/mqtt.md)."""

    kind: Literal["mqtt"]
    spool_dir: Path | None = Field(
        default=None,
        description="Default: <state dir>/spool, the state dir being $STATE_DIRECTORY under "
        "systemd, /var/lib/edge-agent for root, else $XDG_STATE_HOME/edge-agent.",
    )
    spool_max_mb: float = Field(
        default=100.0, ge=0.5, description="Cap on the spool's files on disk (database + log)."
    )
    spool_max_age_h: float = Field(default=168.0, gt=0)
    full_policy: Literal["drop_oldest", "drop_new"] = Field(
        default="drop_oldest",
        description="When full: drop the oldest results, or refuse new results. Alarms are "
        "kept over results either way.",
    )
    fsync: Literal["always", "normal", "off"] = "normal"
    commit_interval_s: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="0: results are written (and acknowledged ones deleted) once per batch of "
        "sample blocks. Above 0: at most once per this interval, in one transaction, which "
        "cuts what the spool writes to an SD card (docs/benchmarks.md) for that much added "
        "latency and that much at risk in a crash. Alarms are written at once either way.",
    )
    memory_max_mb: float = Field(
        default=8.0,
        gt=0,
        description="While the disk refuses writes (full, read-only), messages wait in memory "
        "up to this much; beyond it the oldest results are dropped (counted), alarms last.",
    )
    broker_id: Identifier | None = Field(
        default=None,
        description="Names the broker the spool belongs to; default host:port. Give one id to a "
        "cluster reached through several addresses.",
    )
    inflight: int = Field(default=256, ge=1, le=65535, description="Unacknowledged QoS 1 messages.")
    stall_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="Connected, messages in flight, and no acknowledgement for this long: the "
        "connection is replaced (a recovery, counted and logged).",
    )
    metrics_interval_s: float = Field(default=30.0, gt=0)
    homeassistant: bool = Field(
        default=False, description="Publish Home Assistant MQTT discovery for this device."
    )
    homeassistant_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_-]+$")
    qos0_offline: Literal["drop", "spool"] = Field(
        default="drop",
        description="Metrics (QoS 0) while disconnected: count as dropped, or spool.",
    )
    response_topic_allow: list[str] | None = Field(
        default=None,
        description="If set, a command's MQTT v5 response topic must match one of these "
        "filters (reserved device topics are refused whatever this says).",
    )


SinkConfig = Annotated[Union[JsonlSinkConfig, MqttSinkConfig], Field(discriminator="kind")]  # noqa: UP007
