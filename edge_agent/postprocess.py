"""Turning a model's float output into the task's answer; training evaluates with the same code."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.manifest import AnomalyOutput, ClassificationOutput, Manifest, RulOutput


def reconstruction_mse(model_input: np.ndarray, model_output: np.ndarray) -> float:
    """Anomaly score of an autoencoder: mean squared error over every input element."""
    diff = np.asarray(model_input, dtype=np.float64).reshape(-1) - np.asarray(
        model_output, dtype=np.float64
    ).reshape(-1)
    return float(np.mean(diff * diff))


def interpret(
    manifest: Manifest, model_input: np.ndarray, model_output: np.ndarray
) -> dict[str, Any]:
    """The task's fields for a result payload, all plain Python numbers and strings."""
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
        score = reconstruction_mse(model_input, model_output)
        return {"score": score, "threshold": spec.threshold, "is_anomaly": score > spec.threshold}
    assert isinstance(spec, RulOutput)
    return {"rul": max(float(model_output[0]), 0.0), "units": spec.units}


def interpret_many(
    manifest: Manifest, model_inputs: np.ndarray, model_outputs: np.ndarray
) -> list[dict[str, Any]]:
    """`interpret` for a batch (examples on the leading axis), field for field the same answers,
    with the arithmetic done once per batch instead of once per window."""
    spec = manifest.output
    n = len(model_outputs)
    if isinstance(spec, ClassificationOutput):
        labels = spec.labels
        best = np.argmax(model_outputs, axis=1).tolist()
        return [
            {"label": labels[b], "confidence": row[b], "probabilities": dict(zip(labels, row))}
            for b, row in zip(best, model_outputs.tolist())
        ]
    if isinstance(spec, AnomalyOutput):
        inputs = np.asarray(model_inputs, dtype=np.float64).reshape(n, -1)
        diff = inputs - np.asarray(model_outputs, dtype=np.float64).reshape(n, -1)
        threshold = spec.threshold
        return [
            {"score": score, "threshold": threshold, "is_anomaly": score > threshold}
            for score in np.mean(diff * diff, axis=1).tolist()
        ]
    assert isinstance(spec, RulOutput)
    units = spec.units
    return [{"rul": max(rul, 0.0), "units": units} for rul in model_outputs[:, 0].tolist()]
