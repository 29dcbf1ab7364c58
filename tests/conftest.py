"""Shared fixtures: where the committed data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cmapss_dir() -> Path:
    """The C-MAPSS files: $CMAPSS_DIR, else ../shared/data/cmapss beside the checkout (as in CI)."""
    directory = Path(os.environ.get("CMAPSS_DIR", REPO_ROOT.parent / "shared" / "data" / "cmapss"))
    if not (directory / "train_FD001.txt").is_file():
        pytest.fail(f"C-MAPSS FD001 not found in {directory}; set CMAPSS_DIR")
    return directory
