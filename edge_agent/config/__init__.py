"""Agent configuration: one TOML file, validated strictly; errors name the key path."""

from __future__ import annotations

from pathlib import Path

import tomllib
from pydantic import ValidationError

from edge_agent.config.agent import AgentConfig
from edge_agent.errors import ConfigError, describe_validation_error


def load_agent_config(path: str | Path) -> AgentConfig:
    """Read and validate; relative paths in the file are resolved against its folder."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        config = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from None
    return _resolve(config, path.parent)


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
