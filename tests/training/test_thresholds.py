"""Threshold policies and the float-vs-int8 gate, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from training.anomaly import calibrate
from training.config import GateConfig, TrainConfig
from training.datasets import Split, TaskData
from training.evaluation import gate_failures, quantile_support


def _config(**output) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "name": "t",
            "task": "anomaly",
            "dataset": {"kind": "table", "train": "x.csv", "channels": ["a"]},
            "input": {"window": 4, "hop": 4, "normalise": "none"},
            "model": {"architecture": "dense_autoencoder"},
            "output": {"score": "reconstruction_mae", **output},
        }
    )


def _data(train: list[float], val: list[float], val_runs: list[int] | None = None):
    """Model inputs of one element each: with a model that outputs zeros, a window's MAE
    score is exactly its value."""
    runs = np.zeros(len(val), int) if val_runs is None else np.array(val_runs)
    split = lambda values, r: Split(np.zeros((len(values), 4, 1)), np.zeros(len(values)), runs=r)  # noqa: E731
    data = TaskData(
        name="t",
        fingerprint="0" * 64,
        channels=["a"],
        sample_rate_hz=1.0,
        train=split(train, np.zeros(len(train), int)),
        val=split(val, runs),
        test=split(val, runs),
        train_rows=np.zeros((1, 1)),
        test_description="",
    )
    x = {"train": np.array(train)[:, None], "val": np.array(val)[:, None]}
    return data, x


def _zeros(inputs: np.ndarray) -> np.ndarray:
    return np.zeros_like(inputs)


def _threshold(config: TrainConfig, train: list[float], val: list[float], runs=None):
    data, x = _data(train, val, runs)
    lines: list[str] = []
    notes: list[str] = []
    output = calibrate(config.output, data, x, _zeros, lines.append, notes, "float")
    return output, lines, notes


def test_quantile_times_margin_of_validation_scores() -> None:
    """Test quantile 0.9 of validation scores 0..9 (8.1, numpy's linear rule) times 1.5."""
    config = _config(threshold_quantile=0.9, threshold_margin=1.5)
    output, _, _ = _threshold(config, [100.0] * 5, [float(v) for v in range(10)])
    assert output.threshold == pytest.approx(8.1 * 1.5, rel=1e-12)
    assert output.threshold_source == "quantile" and output.calibrated_on == "validation"
    assert output.calibration_windows == 10 and output.threshold_margin == 1.5


def test_quantile_of_training_and_validation_scores() -> None:
    """Test that calibrate_on = 'train+validation' takes the quantile over both: 0..19 -> 17.1."""
    config = _config(threshold_quantile=0.9, calibrate_on="train+validation")
    output, _, _ = _threshold(
        config, [float(v) for v in range(10, 20)], [float(v) for v in range(10)]
    )
    assert output.threshold == pytest.approx(17.1, rel=1e-12)
    assert output.calibration_windows == 20 and output.calibrated_on == "train+validation"


def test_fixed_threshold_is_given_and_ignores_scores() -> None:
    """Test that output.threshold is written as a given threshold without quantile or count."""
    output, lines, _ = _threshold(_config(threshold=2.5), [1.0], [1.0, 2.0])
    assert (output.threshold, output.threshold_source) == (2.5, "given")
    assert output.threshold_quantile is None and output.calibration_windows is None
    assert lines == []


def test_calibration_uses_smoothed_scores_per_run() -> None:
    """Test that the quantile is taken of scores smoothed as the agent smooths them: a moving
    mean of 2 over runs [0, 0, 1, 1] turns 0, 2, 4, 6 into 0, 1, 4, 5, median 2.5."""
    config = _config(threshold_quantile=0.5, smoothing={"method": "moving_mean", "windows": 2})
    output, _, _ = _threshold(config, [9.0], [0.0, 2.0, 4.0, 6.0], runs=[0, 0, 1, 1])
    assert output.threshold == 2.5


def test_too_few_calibration_windows_for_the_quantile_are_said_once() -> None:
    """Test the rule 10 / (1 - q): 10 windows are too few for q = 0.9 (100 needed), 100 are
    enough; the shortfall is one log line and one report note."""
    assert quantile_support(100, 0.9) is None
    assert quantile_support(1999, 0.995) is not None and quantile_support(2000, 0.995) is None
    _, lines, notes = _threshold(
        _config(threshold_quantile=0.9), [1.0], [float(v) for v in range(10)]
    )
    warnings = [line for line in lines if "warning" in line]
    assert len(warnings) == 1 and "only 10 calibration windows for quantile 0.9" in warnings[0]
    assert "about 100 are needed" in warnings[0] and len(notes) == 1


def test_gate_names_each_metric_beyond_its_tolerance() -> None:
    """Test each gate rule on hand-made figures: AUC drop, accuracy drop, relative RMSE rise and
    false-alarm rise beyond the defaults fail with both figures; within them pass."""
    gate = GateConfig()
    assert (
        gate_failures(
            gate,
            {"roc_auc": 0.99, "false_alarm_rate": 0.01},
            {"roc_auc": 0.975, "false_alarm_rate": 0.025},
        )
        == []
    )
    failures = gate_failures(
        gate,
        {"roc_auc": 0.865, "false_alarm_rate": 0.026, "accuracy": 0.99, "rmse": 14.0},
        {"roc_auc": 0.601, "false_alarm_rate": 0.506, "accuracy": 0.95, "rmse": 14.8},
    )
    assert [f.split()[0] for f in failures] == ["roc_auc", "accuracy", "rmse", "false_alarm_rate"]
    assert (
        failures[0]
        == "roc_auc float 0.865, int8 0.601 (+0.264 behind) exceeds gate.max_auc_drop 0.02"
    )
    assert "gate.max_rmse_increase 0.05" in failures[2] and "+0.05714" in failures[2]
    assert gate_failures(gate, {"rmse": 14.0}, {"rmse": 14.6}) == []  # 4.3 % < 5 %


def test_committed_reference_bundles_pass_the_default_gate() -> None:
    """Test that the defaults leave room for the committed bundles' own float/int8 figures."""
    from pathlib import Path

    from edge_agent.bundle import read_bundle

    root = Path(__file__).resolve().parents[2] / "models"
    for bundle in sorted(root.iterdir()):
        values = read_bundle(bundle).manifest.metrics.values
        floats = {k: v.float_model for k, v in values.items()}
        int8s = {k: v.int8_model for k, v in values.items()}
        assert gate_failures(GateConfig(), floats, int8s) == [], bundle.name


def test_anomaly_output_settings_are_refused_for_other_tasks() -> None:
    """Test that smoothing or a score kind in a classification config is an error, not ignored."""
    raw = _config().model_dump(mode="json")
    raw.update(task="classification", model={"architecture": "cnn1d_classifier"})
    raw["output"] = {"smoothing": {"method": "ewma", "alpha": 0.5}, "score": "reconstruction_mae"}
    with pytest.raises(ValueError, match=r"output\.score, output\.smoothing only apply to task"):
        TrainConfig.model_validate(raw)
