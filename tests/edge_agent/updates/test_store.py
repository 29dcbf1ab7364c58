"""The model store: every step of an installation is a rename, so stopping after any step (a
crash) leaves a pointer naming a complete bundle, and leftovers are cleaned at the next start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_agent.bundle import MANIFEST_FILE, MODEL_FILE, read_bundle
from edge_agent.errors import BundleError
from edge_agent.updates.store import ModelStore
from tests.conftest import REPO_ROOT

BUNDLE = REPO_ROOT / "models/vibration-fault"
NAME = "vibration-fault"


def _steps(store: ModelStore, version: str):
    """The installation of `version` as the sequence of its durable steps."""
    staging = store.stage(NAME)
    yield "staged"
    for file in (MANIFEST_FILE, MODEL_FILE):
        shutil.copyfile(BUNDLE / file, staging / file)
    yield "copied"
    store.install(NAME, version, staging)
    yield "installed"
    store.switch(NAME, version, store.pointer(NAME)["current"])
    yield "switched"


@pytest.mark.parametrize("stop_after", ["staged", "copied", "installed", "switched"])
def test_stopping_after_any_step_leaves_a_complete_current_bundle(
    tmp_path: Path, stop_after: str
) -> None:
    """Test an update 1.0.0 -> 1.0.1 interrupted after each step: a fresh store (the restart)
    points at 1.0.0 or 1.0.1, that folder reads and verifies, and clean() removes leftovers."""
    store = ModelStore(tmp_path)
    store.seed(NAME, "1.0.0", BUNDLE)
    for step in _steps(store, "1.0.1"):
        if step == stop_after:
            break
    restarted = ModelStore(tmp_path)
    restarted.clean(NAME)
    current = restarted.pointer(NAME)["current"]
    expected = "1.0.1" if stop_after == "switched" else "1.0.0"
    assert current == expected
    assert read_bundle(restarted.path(NAME, current)).manifest.name == NAME
    assert not list((tmp_path / NAME).glob(".incoming-*"))


def test_the_same_version_with_other_bytes_is_not_replaced(tmp_path: Path) -> None:
    """Test that installing an already installed version with different model bytes is refused
    and the installed folder is untouched."""
    store = ModelStore(tmp_path)
    installed = store.seed(NAME, "1.0.0", BUNDLE)
    before = (installed / MODEL_FILE).read_bytes()
    staging = store.stage(NAME)
    shutil.copyfile(BUNDLE / MANIFEST_FILE, staging / MANIFEST_FILE)
    (staging / MODEL_FILE).write_bytes(before[:-1] + bytes([before[-1] ^ 1]))
    with pytest.raises(BundleError, match="other bytes"):
        store.install(NAME, "1.0.0", staging)
    assert (installed / MODEL_FILE).read_bytes() == before
