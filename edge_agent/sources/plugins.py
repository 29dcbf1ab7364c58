"""Building sources from config, including third-party drivers registered as entry points."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points

from edge_agent.config.agent import AgentConfig
from edge_agent.config.sources import (
    MqttSourceConfig,
    PluginSourceConfig,
    ReplaySourceConfig,
    SimulatorSourceConfig,
)
from edge_agent.errors import ConfigError
from edge_agent.logs import RateLimiter
from edge_agent.sources.base import Source

ENTRY_POINT_GROUP = "edge_agent.sources"


def load_plugin(config: PluginSourceConfig) -> Source:
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if config.plugin not in found:
        raise ConfigError(
            f"source '{config.id}': no plugin '{config.plugin}' in entry point group "
            f"'{ENTRY_POINT_GROUP}' (installed: {sorted(found) or 'none'})"
        )
    try:
        factory = found[config.plugin].load()
        return factory(config.id, dict(config.options))
    except Exception as exc:  # a third-party driver may fail in any way; report, do not crash
        raise ConfigError(f"source '{config.id}': plugin '{config.plugin}' failed: {exc}") from None


def build_source(
    config: AgentConfig, index: int, limiter: RateLimiter, columns: Sequence[str] | None = None
) -> Source:
    """The source `config.sources[index]`; `columns`: the channels its models read (after
    channel_map), which a replay reads instead of every column of its file."""
    source = config.sources[index]
    if isinstance(source, SimulatorSourceConfig):
        from edge_agent.sources.simulator import SimulatorSource

        return SimulatorSource(source)
    if isinstance(source, ReplaySourceConfig):
        from edge_agent.sources.replay import ReplaySource

        return ReplaySource(source, columns)
    if isinstance(source, MqttSourceConfig):
        from edge_agent.sources.mqtt import MqttSource

        assert config.mqtt is not None
        return MqttSource(source, config.mqtt, config.device_id, limiter)
    return load_plugin(source)
