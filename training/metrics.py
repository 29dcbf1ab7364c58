"""Evaluation metrics in plain numpy, so workstation reports and device checks agree exactly.

Inputs are array-likes; mismatched shapes, empty inputs and non-finite values raise
`ValueError` rather than producing a number that looks valid.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _values(x: ArrayLike, name: str) -> np.ndarray:
    """Flatten to a non-empty, finite float64 vector."""
    array = np.asarray(x, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def _pair(pred: ArrayLike, true: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check that predictions and targets line up one to one."""
    p, t = _values(pred, "pred"), _values(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred has {p.size} values but true has {t.size}")
    return p, t


def _labels(pred: ArrayLike, true: ArrayLike, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Check that both label vectors hold integers in [0, n_classes)."""
    p, t = _pair(pred, true)
    for name, labels in (("pred", p), ("true", t)):
        whole = np.all(labels == np.round(labels))
        if not (whole and labels.min() >= 0 and labels.max() < n_classes):
            raise ValueError(f"{name} labels must be integers in [0, {n_classes})")
    return p.astype(np.int64), t.astype(np.int64)


def _binary(scores: ArrayLike, is_positive: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check scores against 0/1 (or bool) labels, with both classes present."""
    s = _values(scores, "scores")
    raw = np.asarray(is_positive).ravel()
    if raw.shape != s.shape:
        raise ValueError(f"scores has {s.size} values but is_positive has {raw.size}")
    if raw.dtype != np.bool_ and not np.isin(raw, (0, 1)).all():
        raise ValueError("is_positive must be boolean or 0/1")
    positive = raw.astype(bool)
    if positive.all() or not positive.any():
        raise ValueError("need both positive and negative examples")
    return s, positive


def rmse(pred: ArrayLike, true: ArrayLike) -> float:
    """Root-mean-square error, the headline C-MAPSS metric."""
    p, t = _pair(pred, true)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def phm08_score(pred: ArrayLike, true: ArrayLike) -> float:
    """PHM08 challenge score: a sum, lower is better, late predictions cost more than early.

    With d = pred - true, each engine adds exp(-d/13) - 1 if d < 0, else exp(d/10) - 1,
    because predicting failure too late is the dangerous mistake.
    """
    p, t = _pair(pred, true)
    d = p - t
    return float(np.sum(np.where(d < 0, np.expm1(-d / 13.0), np.expm1(d / 10.0))))


def accuracy(pred_labels: ArrayLike, true_labels: ArrayLike) -> float:
    """Fraction of labels predicted exactly."""
    p, t = _pair(pred_labels, true_labels)
    return float(np.mean(p == t))


def confusion_matrix(pred: ArrayLike, true: ArrayLike, n_classes: int) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class, as int64."""
    p, t = _labels(pred, true, n_classes)
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def macro_f1(pred: ArrayLike, true: ArrayLike, n_classes: int) -> float:
    """Unweighted mean of per-class F1, so rare fault classes count as much as 'normal'.

    Classes that occur neither in `true` nor in `pred` have no defined F1 and are left
    out of the mean rather than counted as 0 or 1.
    """
    cm = confusion_matrix(pred, true, n_classes)
    tp = np.diag(cm).astype(np.float64)
    denominator = cm.sum(axis=0) + cm.sum(axis=1)  # 2*tp + fp + fn
    present = denominator > 0
    return float(np.mean(2.0 * tp[present] / denominator[present]))


def roc_auc(scores: ArrayLike, is_positive: ArrayLike) -> float:
    """Probability that a random positive outscores a random negative; ties count half.

    Computed from average ranks (Mann-Whitney U), which handles ties exactly.
    """
    s, positive = _binary(scores, is_positive)
    _, group, counts = np.unique(s, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based mean rank per score
    ranks = average_rank[group]
    n_pos = int(positive.sum())
    n_neg = s.size - n_pos
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(
    scores: ArrayLike, is_positive: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points (fpr, tpr, thresholds) for the rule "alarm when score > threshold".

    Thresholds are the distinct scores in decreasing order followed by -inf, so the curve
    runs from (0, 0) to (1, 1), and fpr[i] equals
    `false_alarm_rate(negative_scores, thresholds[i])` exactly: a threshold read off this
    curve behaves the same when deployed.
    """
    s, positive = _binary(scores, is_positive)
    distinct, group = np.unique(s, return_inverse=True)
    pos_per_score = np.bincount(group, weights=positive, minlength=distinct.size)[::-1]
    neg_per_score = np.bincount(group, weights=~positive, minlength=distinct.size)[::-1]
    tps = np.concatenate(([0.0], np.cumsum(pos_per_score)))
    fps = np.concatenate(([0.0], np.cumsum(neg_per_score)))
    thresholds = np.concatenate((distinct[::-1], [-np.inf]))
    return fps / fps[-1], tps / tps[-1], thresholds


def false_alarm_rate(scores_of_normals: ArrayLike, threshold: float) -> float:
    """Fraction of known-normal samples that would raise an alarm (score > threshold)."""
    s = _values(scores_of_normals, "scores_of_normals")
    return float(np.mean(s > threshold))
