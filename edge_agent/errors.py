"""Error hierarchy: every expected failure carries one readable sentence naming what and where.

Command-line entry points catch `EdgeError` and print its message without a traceback.
"""

from __future__ import annotations

from pathlib import Path


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
