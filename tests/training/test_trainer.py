"""End-to-end training on bring-your-own CSV data: real Keras, real int8 conversion, real LiteRT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_agent.bundle import read_bundle
from edge_agent.runtime import load_model
from training.config import load_config
from training.datasets import build_task_data
from training.trainer import _features


def test_bundles_are_full_int8_and_verified(tiny_bundles: dict[str, Path]) -> None:
    """Test that every task's bundle has int8 input/output tensors and passes its golden test."""
    for task, path in tiny_bundles.items():
        runner = load_model(path)
        assert runner.manifest.task == task
        assert runner.input_spec.dtype == "int8" and runner.output_spec.dtype == "int8"
        assert runner.smoke_test() <= runner.manifest.golden.atol


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


def test_training_features_equal_device_pipeline_bit_for_bit(tiny_bundles: dict[str, Path]) -> None:
    """Test that the trainer's features and the manifest's pipeline give identical model inputs."""
    bundle = tiny_bundles["classification"]
    manifest = read_bundle(bundle).manifest
    config, _ = load_config(bundle.parent.parent / "classification" / "classification.toml")
    data = build_task_data(config)
    device = manifest.input.pipeline().batch(data.test.windows)
    trainer = _features(manifest.input.features, data.test.windows, data.sample_rate_hz)
    assert device.tobytes() == trainer.astype(np.float32).tobytes()


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
        assert (folder / "training_curves.png").is_file()
        summary = (folder / "summary.md").read_text()
        assert "| metric | float | int8 |" in summary
        metrics = json.loads((folder / "metrics.json").read_text())
        assert (
            metrics["sizes_bytes"]["int8_tflite"] > 0 and metrics["sizes_bytes"]["float_tflite"] > 0
        )


def test_anomaly_faults_kept_out_of_training(tiny_bundles: dict[str, Path]) -> None:
    """Test that the anomaly split trains on normal windows only and tests on both kinds."""
    config, _ = load_config(tiny_bundles["anomaly"].parent.parent / "anomaly" / "anomaly.toml")
    data = build_task_data(config)
    assert set(data.train.tags) == {"normal"} and set(data.val.tags) == {"normal"}
    assert set(data.test.tags) == {"normal", "worn"}
    assert set(data.test.targets.tolist()) == {0, 1}
