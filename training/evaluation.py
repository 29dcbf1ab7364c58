"""Task answers and metrics from model outputs; used for float and int8 models alike."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_agent.postprocess import reconstruction_mse
from training import metrics


@dataclass
class Evaluation:
    """Per-example predictions plus summary figures (and tables too big for the manifest)."""

    predictions: np.ndarray
    values: dict[str, float]
    tables: dict[str, list] = field(default_factory=dict)


def anomaly_scores(inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    return np.array([reconstruction_mse(x, y) for x, y in zip(inputs, outputs)])


def calibrate_threshold(normal_scores: np.ndarray, quantile: float) -> float:
    """Threshold at a quantile of held-out normal scores: the expected false-alarm rate is 1 - q."""
    return float(np.quantile(normal_scores, quantile))


def evaluate(
    task: str,
    inputs: np.ndarray,
    outputs: np.ndarray,
    targets: np.ndarray,
    *,
    labels: list[str] | None = None,
    threshold: float | None = None,
    tags: list[str] | None = None,
) -> Evaluation:
    if task == "classification":
        assert labels is not None
        predicted = outputs.argmax(axis=1)
        confusion = metrics.confusion_matrix(predicted, targets, len(labels))
        return Evaluation(
            predicted,
            {
                "accuracy": metrics.accuracy(predicted, targets),
                "macro_f1": metrics.macro_f1(predicted, targets, len(labels)),
            },
            {"confusion_matrix": confusion.tolist()},
        )
    if task == "anomaly":
        assert threshold is not None
        scores = anomaly_scores(inputs, outputs)
        is_fault = targets.astype(bool)
        values = {}
        if is_fault.any() and not is_fault.all():  # normal-only data: only false alarms count
            values["roc_auc"] = metrics.roc_auc(scores, is_fault)
        if not is_fault.all():
            values["false_alarm_rate"] = metrics.false_alarm_rate(scores[~is_fault], threshold)
        if is_fault.any():
            values["detection_rate"] = float(np.mean(scores[is_fault] > threshold))
        tables = {}
        if tags is not None:
            tag_array = np.array(tags)
            normal = scores[~is_fault]
            tables["roc_auc_by_fault"] = [
                [
                    name,
                    metrics.roc_auc(
                        np.concatenate([normal, scores[tag_array == name]]),
                        np.r_[
                            np.zeros(normal.size, bool),
                            np.ones(int((tag_array == name).sum()), bool),
                        ],
                    ),
                ]
                for name in sorted(set(tag_array[is_fault]))
            ]
        return Evaluation(scores, values, tables)
    predicted = np.maximum(outputs.reshape(-1), 0.0)
    return Evaluation(
        predicted,
        {
            "rmse": metrics.rmse(predicted, targets),
            "phm08_score": metrics.phm08_score(predicted, targets),
        },
    )
