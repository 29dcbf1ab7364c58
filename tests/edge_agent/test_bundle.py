"""Reading bundles: each kind of damage is refused with one message naming the file and problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge_agent.bundle import read_bundle, sha256_hex
from edge_agent.errors import BundleError
from edge_agent.runtime import ModelRunner, load_model


@pytest.fixture
def bundle(tiny_bundles: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the tiny classifier bundle that a test may damage."""
    target = tmp_path / "bundle"
    shutil.copytree(tiny_bundles["classification"], target)
    return target


def _edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


def test_intact_bundle_loads(bundle: Path) -> None:
    """Test that an untouched bundle reads, loads and passes its golden smoke test."""
    assert load_model(bundle).manifest.name == "tiny-classifier"


def test_truncated_model_fails_hash_check(bundle: Path) -> None:
    """Test that a truncated model is refused by its sha256 before the interpreter sees it."""
    model = bundle / "model.tflite"
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"model\.tflite: sha256 .* does not match"):
        read_bundle(bundle)


def test_non_tflite_bytes_refused_even_with_matching_hash(bundle: Path) -> None:
    """Test that a file that is not a TFLite flatbuffer is named as such."""
    junk = b"\x00" * 64
    (bundle / "model.tflite").write_bytes(junk)
    _edit_manifest(bundle, lambda raw: raw.update(model_sha256=sha256_hex(junk)))
    with pytest.raises(BundleError, match="not a TFLite flatbuffer"):
        read_bundle(bundle)


def test_manifest_tensor_mismatch_names_the_field(bundle: Path) -> None:
    """Test that a manifest whose input scale differs from the model's is refused, naming it."""
    _edit_manifest(bundle, lambda raw: raw["tensors"]["input"].update(scale=0.5))
    with pytest.raises(BundleError, match=r"manifest disagrees with model: input tensor scale"):
        ModelRunner(read_bundle(bundle))


def test_manifest_shape_mismatch_names_the_field(bundle: Path) -> None:
    """Test that a wrong output shape is reported with both values."""

    def edit(raw: dict) -> None:
        raw["tensors"]["output"]["shape"] = [1, 3]
        raw["output"]["labels"] = ["a", "b", "c"]

    _edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=r"output tensor shape \[1, 2\] \(manifest \[1, 3\]\)"):
        ModelRunner(read_bundle(bundle))


def test_golden_drift_fails_smoke_test(bundle: Path) -> None:
    """Test that a golden output the model does not reproduce fails the smoke test."""
    _edit_manifest(bundle, lambda raw: raw["golden"].update(output=[0.0, 0.0]))
    with pytest.raises(BundleError, match="golden smoke test failed"):
        load_model(bundle)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw.update(colour="blue"), "colour: Extra inputs are not permitted"),
        (lambda raw: raw.update(name="bad/name"), "name: String should match pattern"),
        (lambda raw: raw.update(task="rul"), "task 'rul' needs output fields of RulOutput"),
        (
            lambda raw: raw["input"].update(channels=["ax", "ax", "az"]),
            "channel names must be unique",
        ),
        (
            lambda raw: raw["input"]["features"].append({"op": "fft"}),
            "input.features.3: Input tag 'fft'",
        ),
    ],
)
def test_invalid_manifest_names_key_path(bundle: Path, edit, message: str) -> None:
    """Test that schema violations are reported with the key path, in one message."""
    _edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=r"manifest\.json: ") as caught:
        read_bundle(bundle)
    assert message in str(caught.value)


def test_manifest_not_json_and_missing_files(bundle: Path, tmp_path: Path) -> None:
    """Test that broken JSON, a missing manifest and a missing model each say which."""
    (bundle / "manifest.json").write_text("{ not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(bundle)
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest not found"):
        read_bundle(bundle)
    with pytest.raises(BundleError, match="bundle directory not found"):
        read_bundle(tmp_path / "missing")


def _fewer_bands(raw: dict) -> None:
    """Seven bands per concat branch instead of eight, the fitted standardize step dropped."""
    for branch in raw["input"]["features"][1]["branches"]:
        branch[0]["n_bands"] = 7
    raw["input"]["features"].pop()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _fewer_bands,
            "the feature pipeline turns a (128, 3) window into shape (7, 6) but the model's "
            "input tensor has shape [1, 8, 6]",
        ),
        (
            lambda raw: raw["input"]["features"][1]["branches"][0][0].update(n_bands=7),
            "the feature pipeline fails on a (128, 3) window (concat axis='channels' needs 2-D "
            "branches with equal rows, got [(7, 3), (8, 3)])",
        ),
        (
            lambda raw: raw["golden"]["input"].pop(),
            "the golden input has 42 values but the model's input tensor [1, 8, 6] takes 48",
        ),
    ],
)
def test_front_end_that_cannot_feed_the_model_refused_at_load(
    bundle: Path, edit, message: str
) -> None:
    """Test that a manifest whose features (or golden input) do not fit the model's input tensor
    is refused when the runner is built, in one sentence naming both shapes."""
    _edit_manifest(bundle, edit)
    with pytest.raises(BundleError) as caught:
        ModelRunner(read_bundle(bundle))
    assert str(caught.value) == f"{bundle}: {message}"
