"""Base for every agent config section: unknown keys are errors, values are immutable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, TypeVar

import tomllib
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from edge_agent.errors import ConfigError, describe_validation_error

# Ids that become MQTT topic levels and file names: never '+', '#', '/', spaces or control chars.
TopicId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ModelT = TypeVar("ModelT", bound=BaseModel)


class Secret(Section):
    """A secret given inline, by environment variable or by file; its value is never logged."""

    value: str | None = Field(default=None, repr=False)
    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        given = [name for name in ("value", "env", "file") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of value, env or file (got {given or 'none'})")
        return self

    def reveal(self) -> str:
        """The secret itself; raises ValueError naming the variable or file if it is missing."""
        if self.value is not None:
            return self.value
        if self.env is not None:
            found = os.environ.get(self.env)
            if found is None:
                raise ValueError(f"environment variable {self.env} is not set")
            return found
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {self.file}: {exc.strerror}") from None

    def __str__(self) -> str:
        return "<secret>"


def read_toml_model(path: Path, model: type[ModelT]) -> tuple[ModelT, str]:
    """Parse a TOML file into `model`; every failure is one ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return model.model_validate(raw), text
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from None
