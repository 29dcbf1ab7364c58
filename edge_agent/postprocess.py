"""Turning a model's float output into the task's answer; training evaluates with the same code.

Anomaly scores and their smoothing live here once: the agent calls them per window, training
and `edge-train evaluate` call them on whole splits, so a threshold means the same on both sides.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edge_agent.manifest import (
    AnomalyOutput,
    ClassificationOutput,
    Manifest,
    RulOutput,
    ScoreName,
    Smoothing,
)


def _errors(model_input: np.ndarray, model_output: np.ndarray, n: int | None = None) -> np.ndarray:
    """Element-wise reconstruction error in float64: both arrays flattened, or with `n`
    examples on a leading axis, each example flattened to one row."""
    shape = (-1,) if n is None else (n, -1)
    return np.asarray(model_input, dtype=np.float64).reshape(shape) - np.asarray(
        model_output, dtype=np.float64
    ).reshape(shape)


# Each reduces the last axis: one example's errors (1-D) or a batch's rows (2-D), same bits per
# row either way (a contiguous row is summed in the same order).
def _mse(diff: np.ndarray) -> np.ndarray:
    return np.mean(diff * diff, axis=-1)


def _mae(diff: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(diff), axis=-1)


def _max_error(diff: np.ndarray) -> np.ndarray:
    return np.max(np.abs(diff), axis=-1)


SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "reconstruction_mse": _mse,
    "reconstruction_mae": _mae,
    "reconstruction_max_error": _max_error,
}


def anomaly_score(kind: ScoreName, model_input: np.ndarray, model_output: np.ndarray) -> float:
    """One window's anomaly score of an autoencoder, of the manifest's `output.score` kind."""
    return float(SCORES[kind](_errors(model_input, model_output)))


def anomaly_scores(
    kind: ScoreName, model_inputs: np.ndarray, model_outputs: np.ndarray
) -> list[float]:
    """`anomaly_score` of each example stacked on the leading axis, bit for bit, in one pass."""
    n = len(model_outputs)
    return SCORES[kind](_errors(model_inputs, model_outputs, n)).tolist()


def reconstruction_mse(model_input: np.ndarray, model_output: np.ndarray) -> float:
    """Anomaly score of an autoencoder: mean squared error over every input element."""
    return anomaly_score("reconstruction_mse", model_input, model_output)


class ScoreSmoother:
    """Smooths the successive window scores of one stream (manifest `output.smoothing`).

    `run` names the stretch of consecutive windows a score belongs to (the windower's restart
    count on the device, the segment in training): a new run starts the smoothing afresh, so
    windows on either side of a gap are never averaged together.
    """

    def __init__(self, spec: Smoothing) -> None:
        self.spec = spec
        self._run: int | None = None
        self._ewma = 0.0
        self._recent: deque[float] = deque(maxlen=spec.windows or 1)

    def __call__(self, score: float, run: int) -> float:
        fresh = run != self._run
        self._run = run
        if self.spec.method == "ewma":
            alpha = float(self.spec.alpha)  # type: ignore[arg-type]
            self._ewma = score if fresh else alpha * score + (1.0 - alpha) * self._ewma
            return self._ewma
        if fresh:
            self._recent.clear()
        self._recent.append(score)
        return sum(self._recent) / len(self._recent)


def smooth_scores(spec: Smoothing | None, scores: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Scores of consecutive windows smoothed exactly as the agent smooths them one by one."""
    if spec is None:
        return np.asarray(scores, dtype=np.float64)
    smoother = ScoreSmoother(spec)
    return np.array([smoother(float(s), int(r)) for s, r in zip(scores, runs)], dtype=np.float64)


def interpret(
    manifest: Manifest,
    model_input: np.ndarray,
    model_output: np.ndarray,
    smoother: ScoreSmoother | None = None,
    run: int = 0,
) -> dict[str, Any]:
    """The task's fields for a result payload, all plain Python numbers and strings.

    An anomaly model that smooths its scores needs this stream's `smoother` and the window's
    `run`; `score` is then the smoothed value and `raw_score` the window's own."""
    spec = manifest.output
    if isinstance(spec, ClassificationOutput):
        probabilities = [float(p) for p in model_output]
        best = int(np.argmax(model_output))
        return {
            "label": spec.labels[best],
            "confidence": probabilities[best],
            "probabilities": dict(zip(spec.labels, probabilities)),
        }
    if isinstance(spec, AnomalyOutput):
        raw = anomaly_score(spec.score, model_input, model_output)
        if smoother is None:
            return {"score": raw, "threshold": spec.threshold, "is_anomaly": raw > spec.threshold}
        score = smoother(raw, run)
        return {
            "score": score,
            "threshold": spec.threshold,
            "is_anomaly": score > spec.threshold,
            "raw_score": raw,
        }
    assert isinstance(spec, RulOutput)
    return {"rul": max(float(model_output[0]), 0.0), "units": spec.units}


def smoother_for(manifest: Manifest) -> ScoreSmoother | None:
    """A fresh per-stream smoother when the manifest smooths anomaly scores, else None."""
    spec = manifest.output
    if isinstance(spec, AnomalyOutput) and spec.smoothing is not None:
        return ScoreSmoother(spec.smoothing)
    return None


def interpret_many(
    manifest: Manifest,
    model_inputs: np.ndarray,
    model_outputs: np.ndarray,
    smoother: ScoreSmoother | None = None,
    runs: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """`interpret` for a batch (examples on the leading axis, in window order), field for field
    the same answers, with the arithmetic done once per batch instead of once per window.

    Smoothing is sequential, so `smoother` is fed the batch's raw scores in window order, each
    with its window's entry of `runs`, exactly as `interpret` would be called window by window."""
    spec = manifest.output
    if isinstance(spec, ClassificationOutput):
        labels = spec.labels
        best = np.argmax(model_outputs, axis=1).tolist()
        return [
            {"label": labels[b], "confidence": row[b], "probabilities": dict(zip(labels, row))}
            for b, row in zip(best, model_outputs.tolist())
        ]
    if isinstance(spec, AnomalyOutput):
        raw_scores = anomaly_scores(spec.score, model_inputs, model_outputs)
        threshold = spec.threshold
        if smoother is None:
            return [
                {"score": raw, "threshold": threshold, "is_anomaly": raw > threshold}
                for raw in raw_scores
            ]
        if len(runs) != len(raw_scores):
            raise ValueError(f"{len(raw_scores)} scores to smooth but {len(runs)} runs given")
        answers = []
        for raw, run in zip(raw_scores, runs):
            score = smoother(raw, run)
            answers.append(
                {
                    "score": score,
                    "threshold": threshold,
                    "is_anomaly": score > threshold,
                    "raw_score": raw,
                }
            )
        return answers
    assert isinstance(spec, RulOutput)
    units = spec.units
    return [{"rul": max(rul, 0.0), "units": units} for rul in model_outputs[:, 0].tolist()]
