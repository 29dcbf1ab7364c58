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

    security = config.security.model_copy(
        update={
            "trusted_keys": [absolute(p) for p in config.security.trusted_keys],
            "versions_file": config.security.versions_file
            and absolute(config.security.versions_file),
        }
    )
    updates = config.updates.model_copy(
        update={
            key: absolute(value)
            for key in ("store_dir", "watch_dir")
            if (value := getattr(config.updates, key)) is not None
        }
    )
    return config.model_copy(
        update={
            "security": security,
            "updates": updates,
            "models": [resolved(m, ("bundle",)) for m in config.models],
            "sources": [resolved(s, ("path",)) for s in config.sources],
            "sinks": [resolved(s, ("path", "spool_dir")) for s in config.sinks],
        }
    )


__all__ = ["AgentConfig", "load_agent_config"]
