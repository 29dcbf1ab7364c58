"""Task answers and metrics from model outputs; used for float and int8 models alike."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_agent.errors import EdgeError
from edge_agent.manifest import AnomalyOutput, ScoreName
from edge_agent.postprocess import anomaly_score, smooth_scores
from training import metrics
from training.config import GateConfig
from training.datasets.base import Split
from training.timeline import anomaly_report


@dataclass
class Evaluation:
    """Per-example predictions plus summary figures (and tables too big for the manifest)."""

    predictions: np.ndarray
    values: dict[str, float]
    tables: dict[str, list] = field(default_factory=dict)
    # Anomaly: the agent's `is_anomaly` per window (smoothed score > threshold); else None.
    verdicts: np.ndarray | None = None
    # A recording's split: training.timeline's full report of those verdicts (window-level,
    # point-wise and event-wise figures); else empty.
    report: dict[str, float] = field(default_factory=dict)


def anomaly_scores(
    inputs: np.ndarray, outputs: np.ndarray, kind: ScoreName = "reconstruction_mse"
) -> np.ndarray:
    """Each window's score with the agent's own function (edge_agent.postprocess)."""
    return np.array([anomaly_score(kind, x, y) for x, y in zip(inputs, outputs)])


def window_scores(
    spec: AnomalyOutput, inputs: np.ndarray, outputs: np.ndarray, runs: np.ndarray | None
) -> np.ndarray:
    """Scores as the agent compares them with the threshold: of the manifest's kind, smoothed
    over consecutive windows (`runs` numbers them; None: one unbroken stream)."""
    raw = anomaly_scores(inputs, outputs, spec.score)
    return smooth_scores(spec.smoothing, raw, np.zeros(len(raw)) if runs is None else runs)


def calibrate_threshold(normal_scores: np.ndarray, quantile: float) -> float:
    """Threshold at a quantile of held-out normal scores: the expected false-alarm rate is 1 - q."""
    return float(np.quantile(normal_scores, quantile))


def quantile_support(windows: int, quantile: float) -> str | None:
    """Why `windows` normal scores are too few to place a `quantile` threshold, or None.

    About 10 scores beyond the quantile (10 / (1 - q) in all) keep its estimate from resting
    on the few largest values."""
    needed = int(np.ceil(10.0 / (1.0 - quantile) - 1e-9))
    if windows >= needed:
        return None
    return (
        f"only {windows} calibration windows for quantile {quantile:g}: about {needed} are "
        f"needed (10 beyond the quantile), so the threshold rests on the "
        f"{max(round(windows * (1 - quantile)), 0)} largest scores; add normal data, lower "
        "output.threshold_quantile or set output.threshold"
    )


class GateError(EdgeError):
    """The int8 model falls behind the float one beyond the configured tolerance."""


def gate_failures(
    gate: GateConfig,
    float_values: dict[str, float],
    int8_values: dict[str, float],
    thin_threshold: bool = False,
) -> list[str]:
    """One line per metric where int8 falls behind float beyond `gate`, naming both figures.

    `thin_threshold`: the anomaly thresholds rest on too few calibration windows
    (`quantile_support`), so each model's false-alarm rate mostly measures where its own few
    largest normal scores fell, not quantization; that comparison is left out (the report says
    so) and the threshold-free ROC AUC still counts."""
    rules = {  # metric: (how far int8 is behind, tolerance, the tolerance's name)
        "roc_auc": (lambda f, q: f - q, gate.max_auc_drop, "max_auc_drop"),
        "accuracy": (lambda f, q: f - q, gate.max_accuracy_drop, "max_accuracy_drop"),
        "macro_f1": (lambda f, q: f - q, gate.max_accuracy_drop, "max_accuracy_drop"),
        "rmse": (
            lambda f, q: q / f - 1.0 if f > 0 else q - f,
            gate.max_rmse_increase,
            "max_rmse_increase",
        ),
        "false_alarm_rate": (
            lambda f, q: q - f,
            gate.max_false_alarm_increase,
            "max_false_alarm_increase",
        ),
    }
    failures = []
    for metric, (behind, tolerance, name) in rules.items():
        if metric not in float_values or metric not in int8_values:
            continue
        if thin_threshold and metric == "false_alarm_rate":
            continue
        f, q = float_values[metric], int8_values[metric]
        if behind(f, q) > tolerance + 1e-12:
            failures.append(
                f"{metric} float {f:.4g}, int8 {q:.4g} ({behind(f, q):+.4g} behind) exceeds "
                f"gate.{name} {tolerance:g}"
            )
    return failures


def evaluate(
    task: str,
    inputs: np.ndarray,
    outputs: np.ndarray,
    targets: np.ndarray,
    *,
    labels: list[str] | None = None,
    tags: list[str] | None = None,
    anomaly: AnomalyOutput | None = None,
    runs: np.ndarray | None = None,
    scored: np.ndarray | None = None,
) -> Evaluation:
    """Task metrics of model outputs. An anomaly model is scored as its manifest `anomaly`
    says (score kind, smoothing over the consecutive windows numbered by `runs`, threshold),
    which is what the agent publishes.
    `scored` (None: all) marks the windows evaluated; the others only feed the smoothing.
    Predictions and verdicts are those of the evaluated windows."""
    keep = np.ones(len(targets), dtype=bool) if scored is None else np.asarray(scored, bool)
    targets = targets[keep]
    if tags is not None:
        tags = [tag for tag, kept in zip(tags, keep) if kept]
    if task == "classification":
        assert labels is not None
        predicted = outputs[keep].argmax(axis=1)
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
        assert anomaly is not None
        threshold = anomaly.threshold
        scores = window_scores(anomaly, inputs, outputs, runs)[keep]
        verdicts = scores > threshold  # edge_agent.postprocess.interpret's is_anomaly
        is_fault = targets.astype(bool)
        values = {}
        if is_fault.any() and not is_fault.all():  # normal-only data: only false alarms count
            values["roc_auc"] = metrics.roc_auc(scores, is_fault)
        if not is_fault.all():
            values["false_alarm_rate"] = metrics.false_alarm_rate(scores[~is_fault], threshold)
        if is_fault.any():
            values["detection_rate"] = float(np.mean(verdicts[is_fault]))
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
        return Evaluation(scores, values, tables, verdicts)
    predicted = np.maximum(outputs[keep].reshape(-1), 0.0)
    return Evaluation(
        predicted,
        {
            "rmse": metrics.rmse(predicted, targets),
            "phm08_score": metrics.phm08_score(predicted, targets),
        },
    )


def evaluate_split(
    task: str,
    split: Split,
    inputs: np.ndarray,
    outputs: np.ndarray,
    *,
    labels: list[str] | None = None,
    anomaly: AnomalyOutput | None = None,
) -> Evaluation:
    """`evaluate` on a split as the agent sees it: scores smoothed per run of consecutive
    windows, only the evaluated windows counted, and on a recording's timeline the report of
    the agent's verdicts. Training's test figures and `edge-train evaluate` both come from here.
    `inputs` are the model inputs of every window of the split (baseline already applied)."""
    result = evaluate(
        task,
        inputs,
        outputs,
        split.targets,
        labels=labels,
        tags=split.tags or None,
        anomaly=anomaly,
        runs=split.runs,
        scored=split.scored,
    )
    if result.verdicts is not None and split.timeline is not None:
        ends = split.evaluated().ends
        result.report = anomaly_report(split.timeline, ends, result.predictions, result.verdicts)
    return result
