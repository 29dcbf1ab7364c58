"""`[[sinks]]`: where results and alarms go. The pipeline never knows which transport it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field

from edge_agent.schema import StrictModel


class JsonlSinkConfig(StrictModel):
    kind: Literal["jsonl"]
    path: Path = Field(default=Path("-"), description="'-' for standard output.")
    fsync: bool = Field(default=False, description="fsync after every line (durable, slower).")


class MqttSinkConfig(StrictModel):
    """Publish results and alarms through a durable on-disk spool (see docs/mqtt.md)."""

    kind: Literal["mqtt"]
    spool_dir: Path = Path("/var/lib/edge-agent/spool")
    spool_max_mb: float = Field(default=100.0, gt=0)
    spool_max_age_h: float = Field(default=168.0, gt=0)
    full_policy: Literal["drop_oldest", "drop_new"] = Field(
        default="drop_oldest",
        description="When full: drop the oldest results, or refuse new results. Alarms are "
        "kept over results either way.",
    )
    fsync: Literal["always", "normal", "off"] = "normal"
    inflight: int = Field(default=256, ge=1, le=65535, description="Unacknowledged QoS 1 messages.")
    metrics_interval_s: float = Field(default=30.0, gt=0)
    homeassistant: bool = Field(
        default=False, description="Publish Home Assistant MQTT discovery for this device."
    )
    homeassistant_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_-]+$")
    qos0_offline: Literal["drop", "spool"] = Field(
        default="drop",
        description="Metrics (QoS 0) while disconnected: count as dropped, or spool.",
    )


SinkConfig = Annotated[Union[JsonlSinkConfig, MqttSinkConfig], Field(discriminator="kind")]  # noqa: UP007
