"""Per-interpreter golden tolerances: which one the smoke test applies, and the committed values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import get_args

import pytest

from edge_agent.errors import BundleError
from edge_agent.manifest import InterpreterName
from edge_agent.runtime import load_model
from edge_agent.runtime.backends import BackendName
from tests.conftest import REPO_ROOT

BUNDLES = ("vibration-fault", "vibration-anomaly", "cmapss-fd001-rul")
STEP = 0.00390625  # vibration-fault's output scale


def _bundle_with(tmp_path: Path, atol: float, atol_by_backend: dict | None) -> Path:
    """A copy of vibration-fault whose golden output is two output steps off what LiteRT gives."""
    target = tmp_path / "bundle"
    shutil.copytree(REPO_ROOT / "models/vibration-fault", target)
    path = target / "manifest.json"
    raw = json.loads(path.read_text())
    assert raw["tensors"]["output"]["scale"] == STEP
    raw["golden"]["output"][0] -= 2 * STEP
    raw["golden"]["atol"] = atol
    raw["golden"].pop("atol_by_backend", None)
    if atol_by_backend is not None:
        raw["golden"]["atol_by_backend"] = atol_by_backend
    path.write_text(json.dumps(raw, indent=1) + "\n")
    return target


def test_manifest_backend_keys_are_the_runtime_backend_names() -> None:
    """Test that atol_by_backend accepts exactly the names the runtime reports as its backend."""
    assert set(get_args(InterpreterName)) == set(get_args(BackendName))


def test_golden_test_uses_the_running_backends_entry(tmp_path: Path) -> None:
    """Test that the running backend's atol_by_backend entry replaces atol, looser or stricter."""
    loose = _bundle_with(tmp_path / "loose", atol=1.01 * STEP, atol_by_backend=None)
    with pytest.raises(BundleError, match=r"> atol "):
        load_model(loose, backend="ai_edge_litert")
    shutil.rmtree(loose.parent)
    looser = {"ai_edge_litert": 2.01 * STEP}
    runner = load_model(
        _bundle_with(tmp_path / "looser", atol=1.01 * STEP, atol_by_backend=looser),
        backend="ai_edge_litert",
    )
    assert runner.golden_error == pytest.approx(2 * STEP)
    stricter = {"ai_edge_litert": 1.01 * STEP}
    with pytest.raises(BundleError, match=r"> atol_by_backend\.ai_edge_litert "):
        load_model(
            _bundle_with(tmp_path / "stricter", atol=3.01 * STEP, atol_by_backend=stricter),
            backend="ai_edge_litert",
        )


def test_golden_test_falls_back_to_atol_without_an_entry(tmp_path: Path) -> None:
    """Test that a backend missing from atol_by_backend gets atol, whatever the others have."""
    others = {"tflite_runtime": 10 * STEP, "tensorflow": 10 * STEP}
    with pytest.raises(BundleError, match=r"> atol "):
        load_model(
            _bundle_with(tmp_path / "a", atol=1.01 * STEP, atol_by_backend=others),
            backend="ai_edge_litert",
        )
    runner = load_model(
        _bundle_with(tmp_path / "b", atol=2.01 * STEP, atol_by_backend=others),
        backend="ai_edge_litert",
    )
    assert runner.golden_error == pytest.approx(2 * STEP)


@pytest.mark.parametrize("backend", ["ai_edge_litert", "tensorflow"])
@pytest.mark.parametrize("bundle", BUNDLES)
def test_committed_bundles_meet_their_recorded_tolerance(bundle: str, backend: str) -> None:
    """Test that LiteRT and tf.lite reproduce each committed golden output within the tolerance
    recorded for that interpreter (an entry, not the fallback), at least one output step."""
    runner = load_model(REPO_ROOT / "models" / bundle, backend=backend)  # type: ignore[arg-type]
    golden = runner.manifest.golden
    assert golden.atol_by_backend is not None and set(golden.atol_by_backend) == set(
        get_args(BackendName)
    )
    recorded = golden.atol_by_backend[backend]  # type: ignore[index]
    assert runner.backend == backend
    assert runner.golden_error is not None and runner.golden_error <= recorded
    assert recorded >= runner.output_spec.scale  # never tighter than one step (arm64 differs)
