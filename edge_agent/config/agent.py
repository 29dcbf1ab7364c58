"""The whole agent configuration file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edge_agent.config.metrics import MetricsConfig
from edge_agent.config.models import ModelBinding
from edge_agent.config.mqtt import MqttConfig
from edge_agent.config.security import SecurityConfig
from edge_agent.config.sinks import JsonlSinkConfig, MqttSinkConfig, SinkConfig
from edge_agent.config.sources import MqttSourceConfig, SourceConfig
from edge_agent.config.updates import UpdatesConfig
from edge_agent.runtime.backends import BackendChoice
from edge_agent.schema import Identifier, StrictModel


class RuntimeConfig(StrictModel):
    backend: BackendChoice = "auto"
    num_threads: int = Field(default=1, ge=1, le=16)
    edgetpu_fallback_to_cpu: bool = Field(
        default=True, description="If libedgetpu is missing, run Edge TPU models on the CPU."
    )


class LogConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "logfmt"] = "json"
    repeat_interval_s: float = Field(
        default=60.0, ge=0, description="Repeated input errors are logged once per interval."
    )


class SupervisorConfig(StrictModel):
    """How the agent watches itself. Every recovery (a new broker connection, a restarted
    source) happens within `stall_timeout_s` of the MQTT sink plus one `check_interval_s`,
    well inside the 60 s watchdog the systemd unit is meant to use."""

    check_interval_s: float = Field(default=1.0, gt=0, le=10)
    idle_after_s: float = Field(
        default=30.0, gt=0, description="A source with no samples for this long is 'idle'."
    )
    restart_max_s: float = Field(
        default=30.0, ge=1, description="Longest wait before restarting a crashed source."
    )
    recovery_deadline_s: float = Field(
        default=30.0,
        gt=0,
        description="A recovery (new broker connection) with no result for this long, a stuck "
        "source, or a blocked pipeline stops the systemd watchdog pings, so systemd restarts "
        "the service; keep it below WatchdogSec.",
    )


class AgentConfig(StrictModel):
    device_id: Identifier
    runtime: RuntimeConfig = RuntimeConfig()
    mqtt: MqttConfig | None = None
    log: LogConfig = LogConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    security: SecurityConfig = SecurityConfig()
    updates: UpdatesConfig = UpdatesConfig()
    metrics: MetricsConfig = MetricsConfig()
    queue_blocks: int = Field(default=256, ge=1, description="Sample blocks buffered per agent.")
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    sources: list[SourceConfig] = Field(min_length=1)
    models: list[ModelBinding] = Field(min_length=1)
    sinks: list[SinkConfig] = [JsonlSinkConfig(kind="jsonl")]

    @model_validator(mode="after")
    def _references(self) -> AgentConfig:
        ids = [source.id for source in self.sources]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"source ids must be unique, repeated: {duplicates}")
        if self.mqtt is None and any(isinstance(s, MqttSourceConfig) for s in self.sources):
            raise ValueError("an mqtt source needs an [mqtt] section with the broker")
        if self.mqtt is None and any(isinstance(s, MqttSinkConfig) for s in self.sinks):
            raise ValueError("an mqtt sink needs an [mqtt] section with the broker")
        for index, model in enumerate(self.models):
            if model.source not in ids:
                raise ValueError(f"models.{index}.source '{model.source}' is not a source id {ids}")
        return self
