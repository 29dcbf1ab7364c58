"""`[metrics]`: the optional Prometheus endpoint. The metrics topic needs nothing here (its
interval is the MQTT sink's `metrics_interval_s`)."""

from __future__ import annotations

from ipaddress import IPv4Address

from pydantic import Field, IPvAnyAddress

from edge_agent.schema import StrictModel


class MetricsConfig(StrictModel):
    prometheus_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve Prometheus metrics on this TCP port (needs edge-pdm[prometheus]); "
        "off when omitted.",
    )
    prometheus_host: IPvAnyAddress = Field(
        default=IPv4Address("127.0.0.1"),
        description="Address to listen on, an IP address. Loopback by default: the endpoint has "
        "no authentication, so reach it through an SSH tunnel or a local agent.",
    )
