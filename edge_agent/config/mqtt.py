"""`[mqtt]`: the broker connection shared by MQTT sources and the publisher."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge_agent.config.base import Secret
from edge_agent.schema import Identifier, StrictModel


class TlsConfig(StrictModel):
    ca_file: Path | None = Field(default=None, description="CA bundle; default: system store.")
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = None
    verify_hostname: bool = True
    min_version: Literal["1.2", "1.3"] = "1.2"

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(StrictModel):
    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: Identifier | None = Field(
        default=None, description="Default: edge-agent-<device_id>."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    clean_start: bool = Field(
        default=True,
        description="Start without a broker-side session. The spool, not the broker, keeps "
        "undelivered results, so a clean start loses nothing.",
    )
    session_expiry_s: int = Field(
        default=0, ge=0, description="MQTT v5: how long the broker keeps the session after a drop."
    )
    username: str | None = None
    password: Secret | None = None
    tls: TlsConfig | None = None
    topic_prefix: Identifier = "pdm"
    reconnect_min_s: int = Field(default=1, ge=1)
    reconnect_max_s: int = Field(default=60, ge=1)

    @model_validator(mode="after")
    def _credentials(self) -> MqttConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self
