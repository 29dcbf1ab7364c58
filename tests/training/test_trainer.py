"""End-to-end training on bring-your-own CSV data: real Keras, real int8 conversion, real LiteRT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.bundle import read_bundle
from edge_agent.errors import BundleError
from edge_agent.runtime import load_model
from training.config import load_config
from training.datasets import build_task_data
from training.trainer import _features


def test_bundles_are_full_int8_and_reproduce_their_golden_output(
    tiny_bundles: dict[str, Path],
) -> None:
    """Test int8 tensors, and that the golden example gives the exact recorded int8 output."""
    for task, path in tiny_bundles.items():
        runner = load_model(path)
        assert runner.manifest.task == task
        assert runner.input_spec.dtype == "int8" and runner.output_spec.dtype == "int8"
        # Outputs are decoded int8 codes: any difference is a multiple of the output scale, so
        # less than half a step means the same codes as when the bundle was written.
        assert runner.smoke_test() < 0.5 * runner.output_spec.scale


def _shifted_golden(source: Path, target: Path, shift: float) -> Path:
    """A copy of `source` whose manifest's golden output has its first value moved by `shift`."""
    shutil.copytree(source, target)
    manifest = target / "manifest.json"
    raw = json.loads(manifest.read_text())
    raw["golden"]["output"][0] += shift
    manifest.write_text(json.dumps(raw))
    return target


@pytest.mark.parametrize("task", ["classification", "anomaly", "rul"])
def test_golden_output_off_by_more_than_atol_is_refused(
    tiny_bundles: dict[str, Path], tmp_path: Path, task: str
) -> None:
    """Test that a golden output moved past atol fails loading, and one moved within it passes."""
    atol = read_bundle(tiny_bundles[task]).manifest.golden.atol
    load_model(_shifted_golden(tiny_bundles[task], tmp_path / "within", 0.5 * atol))
    with pytest.raises(BundleError, match="golden smoke test failed") as caught:
        load_model(_shifted_golden(tiny_bundles[task], tmp_path / "beyond", 1.5 * atol))
    assert "beyond" in str(caught.value)


def test_manifest_records_everything_the_device_needs(tiny_bundles: dict[str, Path]) -> None:
    """Test that channels, rate, window, fitted normalisation, metrics and provenance are saved."""
    manifest = read_bundle(tiny_bundles["classification"]).manifest
    assert manifest.input.channels == ["ax", "ay", "az"]
    assert manifest.input.sample_rate_hz == 1000.0  # inferred from the ts column
    assert (manifest.input.window, manifest.input.hop) == (128, 64)
    assert manifest.input.features[-1].op == "standardize"
    assert manifest.output.labels == ["normal", "worn"]
    assert set(manifest.metrics.values) == {"accuracy", "macro_f1"}
    assert "tensorflow" in manifest.provenance.libraries
    assert 'name = "tiny-classifier"' in manifest.provenance.config
    rul = read_bundle(tiny_bundles["rul"]).manifest
    assert rul.input.sample_rate_hz is None and rul.output.cap == 60
    assert rul.input.features[0].op == "standardize"  # per-channel, fitted on training units
    anomaly = read_bundle(tiny_bundles["anomaly"]).manifest
    assert anomaly.output.threshold > 0 and anomaly.output.threshold_quantile == 0.9


@pytest.mark.parametrize("task", ["classification", "anomaly"])
def test_training_features_equal_device_pipeline_bit_for_bit(
    tiny_bundles: dict[str, Path], task: str
) -> None:
    """Test that the trainer's features and the manifest's pipeline give identical model inputs."""
    bundle = tiny_bundles[task]
    manifest = read_bundle(bundle).manifest
    config, _ = load_config(bundle.parent.parent / task / f"{task}.toml")
    data = build_task_data(config)
    device = manifest.input.pipeline().batch(data.test.windows)
    trainer = _features(manifest.input.features, data.test.windows, data.sample_rate_hz)
    assert device.tobytes() == trainer.astype(np.float32).tobytes()


def _best_constant_rmse(test_csv: Path) -> float:
    """RMSE of the best constant guess (the mean truth) at each test unit's last row."""
    last: dict[str, float] = {}
    for line in test_csv.read_text().splitlines()[1:]:
        unit, *_, rul = line.split(",")
        last[unit] = float(rul)
    truth = np.array(list(last.values()))
    return float(np.sqrt(np.mean((truth - truth.mean()) ** 2)))


def test_tiny_models_meet_their_quality_bar(tiny_bundles: dict[str, Path]) -> None:
    """Test that each tiny int8 model really learned: well above chance on held-out data."""

    def int8(task: str, metric: str) -> float:
        return read_bundle(tiny_bundles[task]).manifest.metrics.values[metric].int8_model

    # Two machine states, balanced: chance is 0.5 (a model stuck on one class scores 0.5).
    assert int8("classification", "accuracy") >= 0.85
    assert int8("classification", "macro_f1") >= 0.85
    # Healthy vs worn by reconstruction error: a useless score ranks at AUC 0.5.
    assert int8("anomaly", "roc_auc") >= 0.9
    # Better than any constant guess, even one that knows the test units' mean RUL.
    test_csv = tiny_bundles["rul"].parent.parent / "rul" / "test.csv"
    assert int8("rul", "rmse") < 0.8 * _best_constant_rmse(test_csv)


def test_report_folder_has_plots_and_summary(tiny_bundles: dict[str, Path]) -> None:
    """Test that each run writes PNG plots, metrics.json and a markdown summary."""
    reports = tiny_bundles["rul"].parent.parent / "reports"
    expected = {
        "tiny-classifier": "confusion_matrix.png",
        "tiny-anomaly": "score_histogram.png",
        "tiny-rul": "rul_per_engine.png",
    }
    for name, plot in expected.items():
        folder = reports / name
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (folder / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        summary = (folder / "summary.md").read_text()
        assert "| metric | float | int8 |" in summary
        metrics = json.loads((folder / "metrics.json").read_text())
        bundle = reports.parent / "models" / name
        # The report describes the bundle that was written: same file size, same figures.
        assert metrics["sizes_bytes"]["int8_tflite"] == (bundle / "model.tflite").stat().st_size
        assert metrics["sizes_bytes"]["float_tflite"] > 0
        manifest = read_bundle(bundle).manifest
        for key, pair in manifest.metrics.values.items():
            assert (
                metrics["int8"][key] == pair.int8_model
                and metrics["float"][key] == pair.float_model
            )
            assert f"| {key} | {pair.float_model:.4f} | {pair.int8_model:.4f} |" in summary


def test_anomaly_faults_kept_out_of_training(tiny_bundles: dict[str, Path]) -> None:
    """Test that the anomaly split trains on normal windows only and tests on both kinds."""
    config, _ = load_config(tiny_bundles["anomaly"].parent.parent / "anomaly" / "anomaly.toml")
    data = build_task_data(config)
    assert set(data.train.tags) == {"normal"} and set(data.val.tags) == {"normal"}
    assert set(data.test.tags) == {"normal", "worn"}
    assert set(data.test.targets.tolist()) == {0, 1}
