"""Agent configuration: one TOML file, validated strictly; errors name the key path."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config.agent import AgentConfig
from edge_agent.config.base import read_toml_model


def load_agent_config(path: str | Path) -> AgentConfig:
    """Read and validate; relative paths in the file are resolved against its folder."""
    config, _ = read_toml_model(Path(path), AgentConfig)
    return _resolve(config, Path(path).parent)


def _resolve(config: AgentConfig, base: Path) -> AgentConfig:
    def absolute(value: Path) -> Path:
        return value if value.is_absolute() or str(value) == "-" else base / value

    models = [m.model_copy(update={"bundle": absolute(m.bundle)}) for m in config.models]
    sources = [
        s.model_copy(update={"path": absolute(s.path)}) if hasattr(s, "path") else s
        for s in config.sources
    ]
    sinks = [s.model_copy(update={"path": absolute(s.path)}) for s in config.sinks]
    return config.model_copy(update={"models": models, "sources": sources, "sinks": sinks})


__all__ = ["AgentConfig", "load_agent_config"]
