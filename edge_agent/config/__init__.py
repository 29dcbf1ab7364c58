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

    def resolved(section, fields: tuple[str, ...]):
        update = {
            f: absolute(value) for f in fields if (value := getattr(section, f, None)) is not None
        }
        return section.model_copy(update=update) if update else section

    security = resolved(config.security, ("versions_file",))
    keys = [absolute(p) for p in security.trusted_keys]
    return config.model_copy(
        update={
            "security": security.model_copy(update={"trusted_keys": keys}),
            "updates": resolved(config.updates, ("store_dir", "watch_dir")),
            "models": [resolved(m, ("bundle",)) for m in config.models],
            "sources": [resolved(s, ("path",)) for s in config.sources],
            "sinks": [resolved(s, ("path", "spool_dir")) for s in config.sinks],
        }
    )


__all__ = ["AgentConfig", "load_agent_config"]
