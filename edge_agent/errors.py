"""Error hierarchy: every expected failure carries one readable sentence naming what and where.

Command-line entry points catch `EdgeError` and print its message without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class EdgeError(Exception):
    """Base class for expected, user-facing failures."""


class DataError(EdgeError):
    """A data file (recording, dataset) is missing or malformed."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class ConfigError(EdgeError):
    """A configuration file is missing, unparsable or violates its schema."""


class BundleError(EdgeError):
    """A model bundle is missing, corrupt, or its manifest disagrees with its model."""


class RuntimeBackendError(EdgeError):
    """No usable interpreter backend, or the requested one is unavailable."""


def describe_validation_error(error: ValidationError, source: str) -> str:
    """One readable message from a pydantic error: `source: key.path: problem; ...`."""
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        problems.append(f"{location}: {item['msg']}")
    return f"{source}: " + "; ".join(problems)


def run_cli(prog: str, parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Run a parsed subcommand; an expected failure is one line on stderr and exit status 2."""
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EdgeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


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
