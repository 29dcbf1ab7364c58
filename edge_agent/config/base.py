"""Shared pieces of the agent config: secrets and the TOML reader. Every section is a
`StrictModel` (unknown keys are errors, values are immutable)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import Field, model_validator

from edge_agent.errors import ConfigError
from edge_agent.schema import ModelT, StrictModel, read_validated

SECRET_KINDS = ("value", "env", "file", "credential")


class Secret(StrictModel):
    """A secret given inline, by environment variable, by file, or as a systemd credential
    (`LoadCredential=`, read from $CREDENTIALS_DIRECTORY); its value is never logged."""

    value: str | None = Field(default=None, repr=False)
    env: str | None = None
    file: Path | None = None
    credential: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        given = [name for name in SECRET_KINDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(SECRET_KINDS)} (got {given or 'none'})"
            )
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
        path = self.file
        if self.credential is not None:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if directory is None:
                raise ValueError(
                    f"credential {self.credential}: $CREDENTIALS_DIRECTORY is not set "
                    "(not started by systemd with LoadCredential=)"
                )
            path = Path(directory) / self.credential
        assert path is not None
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None

    def __str__(self) -> str:
        return "<secret>"


def read_toml_model(path: Path, model: type[ModelT]) -> tuple[ModelT, str]:
    """Parse a TOML file into `model`; every failure is one ConfigError naming the file."""
    return read_validated(path, tomllib.loads, model, ConfigError, "config file", "TOML")
