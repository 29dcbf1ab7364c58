"""The one strict base for every schema (config, manifest, feature steps, MQTT payloads), the
one identifier rule, and the one reader that turns a TOML or JSON file into a validated model."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from edge_agent.errors import EdgeError

# Ids that become MQTT topic levels and file names: never '+', '#', '/', spaces or control chars.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ID_RE = re.compile(ID_PATTERN)
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Unknown keys are errors and instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def describe_validation_error(error: ValidationError, source: str) -> str:
    """One readable message from a pydantic error: `source: key.path: problem; ...`."""
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        problems.append(f"{location}: {item['msg']}")
    return f"{source}: " + "; ".join(problems)


def read_validated(
    path: Path,
    parse: Callable[[str], Any],
    model: type[ModelT],
    error: type[EdgeError],
    what: str,
    syntax: str,
) -> tuple[ModelT, str]:
    """Read a text file, parse it (TOML, JSON) and validate it against `model`; every failure
    is one `error` naming the file: missing, unreadable, bad syntax, or the schema's key paths."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what} ({exc})") from None
    try:
        raw = parse(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError and json.JSONDecodeError both are
        raise error(f"{path}: not valid {syntax} ({exc})") from None
    try:
        return model.model_validate(raw), text
    except ValidationError as exc:
        raise error(describe_validation_error(exc, str(path))) from None
