"""Anomaly scores and their smoothing: hand-computed values, one implementation for both sides;
batched answers equal the per-window ones, field for field, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.manifest import AnomalyOutput, Smoothing
from edge_agent.postprocess import (
    ScoreSmoother,
    anomaly_score,
    interpret,
    interpret_many,
    reconstruction_mse,
    smooth_scores,
)
from edge_agent.runtime import load_model
from tests.conftest import REPO_ROOT

INPUT = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
OUTPUT = np.array([1.0, 0.0, 6.0, 4.0], dtype=np.float32)  # errors 0, 2, -3, 0


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("reconstruction_mse", (0 + 4 + 9 + 0) / 4),
        ("reconstruction_mae", (0 + 2 + 3 + 0) / 4),
        ("reconstruction_max_error", 3.0),
    ],
)
def test_score_kinds_match_hand_computed_values(kind: str, expected: float) -> None:
    """Test each score kind on a 2x2 input against its reconstruction, flattened row-major."""
    assert anomaly_score(kind, INPUT, OUTPUT) == pytest.approx(expected, abs=0)


def test_reconstruction_mse_keeps_its_name_and_value() -> None:
    """Test that the old function name gives the manifest's reconstruction_mse."""
    assert reconstruction_mse(INPUT, OUTPUT) == anomaly_score("reconstruction_mse", INPUT, OUTPUT)


def test_ewma_and_moving_mean_by_hand_and_restart_per_run() -> None:
    """Test EWMA (alpha 0.5) and a 2-window moving mean on hand-worked scores; a new run
    (a gap on the device, a segment in training) starts afresh."""
    scores = np.array([1.0, 3.0, 5.0, 8.0, 2.0])
    runs = np.array([0, 0, 0, 1, 1])
    ewma = smooth_scores(Smoothing(method="ewma", alpha=0.5), scores, runs)
    assert ewma.tolist() == [1.0, 2.0, 3.5, 8.0, 5.0]
    mean = smooth_scores(Smoothing(method="moving_mean", windows=2), scores, runs)
    assert mean.tolist() == [1.0, 2.0, 4.0, 8.0, 5.0]
    assert smooth_scores(None, scores, runs).tolist() == scores.tolist()


def test_streaming_smoother_equals_the_batch_function() -> None:
    """Test that feeding scores one by one (the agent) equals smoothing a split (training)."""
    rng = np.random.default_rng(0)
    scores, runs = rng.random(200), np.repeat(np.arange(5), 40)
    for spec in (Smoothing(method="ewma", alpha=0.3), Smoothing(method="moving_mean", windows=7)):
        smoother = ScoreSmoother(spec)
        streamed = [smoother(float(s), int(r)) for s, r in zip(scores, runs)]
        assert streamed == smooth_scores(spec, scores, runs).tolist()


def test_smoothing_parameters_must_fit_the_method() -> None:
    """Test that ewma needs alpha (not windows) and moving_mean needs windows (not alpha)."""
    with pytest.raises(ValueError, match="needs alpha"):
        Smoothing(method="ewma", windows=3)
    with pytest.raises(ValueError, match="takes no alpha"):
        Smoothing(method="moving_mean", windows=3, alpha=0.5)


def test_old_anomaly_outputs_still_load_and_given_has_no_quantile() -> None:
    """Test that the manifests' existing output forms load, and that a given threshold refuses
    quantile settings."""
    old = AnomalyOutput.model_validate(
        {"score": "reconstruction_mse", "threshold": 0.4, "threshold_quantile": 0.995}
    )
    assert old.threshold_margin == 1.0 and old.smoothing is None and old.calibrated_on is None
    AnomalyOutput.model_validate(
        {"score": "reconstruction_mse", "threshold": 0.4, "threshold_source": "given"}
    )
    with pytest.raises(ValueError, match="no threshold_quantile or threshold_margin"):
        AnomalyOutput(
            score="reconstruction_mae", threshold=1, threshold_source="given", threshold_margin=2.0
        )


@pytest.mark.parametrize("bundle", ["vibration-fault", "vibration-anomaly", "cmapss-fd001-rul"])
def test_interpret_many_equals_interpret_per_window(bundle: str) -> None:
    """Test that interpret_many gives exactly interpret's dicts for real model outputs."""
    runner = load_model(REPO_ROOT / "models" / bundle)
    rng = np.random.default_rng(5)
    shape = (300, *runner.input_spec.shape[1:])
    inputs = rng.normal(scale=3.0, size=shape).astype(np.float32)
    outputs = runner.predict_many(inputs)
    if runner.manifest.task == "rul":
        outputs[:7, 0] = -outputs[:7, 0] - 1.0  # negative predictions are clipped to 0
    many = interpret_many(runner.manifest, inputs, outputs)
    one = [interpret(runner.manifest, i, o) for i, o in zip(inputs, outputs)]
    assert many == one
    assert len({repr(sorted(d.items())) for d in one}) > 10  # varied answers, not one repeated


@pytest.mark.parametrize(
    "kind", ["reconstruction_mse", "reconstruction_mae", "reconstruction_max_error"]
)
@pytest.mark.parametrize(
    "smoothing",
    [None, Smoothing(method="ewma", alpha=0.3), Smoothing(method="moving_mean", windows=4)],
)
def test_interpret_many_scores_and_smooths_like_interpret(
    kind: str, smoothing: Smoothing | None
) -> None:
    """Test that batches of varying size give each score kind, smoothed score, raw_score and
    verdict exactly as interpret does window by window, runs restarting inside a batch."""
    runner = load_model(REPO_ROOT / "models" / "vibration-anomaly")
    rng = np.random.default_rng(11)
    inputs = rng.normal(scale=2.0, size=(120, *runner.input_spec.shape[1:])).astype(np.float32)
    outputs = runner.predict_many(inputs)
    runs = np.repeat([0, 1, 2, 3], [37, 20, 50, 13]).tolist()
    scores = [anomaly_score(kind, i, o) for i, o in zip(inputs, outputs)]
    threshold = float(np.median(scores))  # verdicts of both kinds
    output = runner.manifest.output.model_copy(
        update={"score": kind, "smoothing": smoothing, "threshold": threshold}
    )
    manifest = runner.manifest.model_copy(update={"output": output})
    one_smoother = ScoreSmoother(smoothing) if smoothing else None
    one = [interpret(manifest, i, o, one_smoother, r) for i, o, r in zip(inputs, outputs, runs)]
    many_smoother = ScoreSmoother(smoothing) if smoothing else None
    many = []
    for a, b in ((0, 1), (1, 30), (30, 64), (64, 120)):  # batches cross run boundaries
        many += interpret_many(manifest, inputs[a:b], outputs[a:b], many_smoother, runs[a:b])
    assert many == one
    assert {d["is_anomaly"] for d in one} == {True, False}
    if smoothing is not None:
        assert any(d["score"] != d["raw_score"] for d in one)
