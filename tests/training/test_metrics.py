"""Tests for training.metrics against small examples worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    accuracy,
    confusion_matrix,
    false_alarm_rate,
    macro_f1,
    phm08_score,
    rmse,
    roc_auc,
    roc_curve,
)

# 3-class toy: true 0 0 0 1 1 2, predicted 0 0 1 1 2 2.
TRUE3 = [0, 0, 0, 1, 1, 2]
PRED3 = [0, 0, 1, 1, 2, 2]

# Tie case: negatives score 0.2 and 0.5, positives 0.5 and 0.9.
TIE_SCORES = [0.2, 0.5, 0.5, 0.9]
TIE_LABELS = [0, 0, 1, 1]


def test_rmse_hand_example() -> None:
    """Test that rmse matches sqrt(mean([0, 0, 4])) = sqrt(4/3)."""
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert rmse([7.0], [7.0]) == 0.0


def test_phm08_early_and_late() -> None:
    """Test that phm08 penalises one early and one late prediction as worked by hand."""
    # Engine 1: pred 90, true 100 -> d = -10 (early): exp(10/13) - 1 = 1.158106
    # Engine 2: pred 115, true 100 -> d = +15 (late):  exp(15/10) - 1 = 3.481689
    # Sum = 4.639795; the late error costs three times as much despite being 1.5x larger.
    assert phm08_score([90, 115], [100, 100]) == pytest.approx(4.639795, abs=1e-6)
    assert phm08_score([50, 60], [50, 60]) == 0.0


def test_phm08_penalises_late_more_than_early() -> None:
    """Test that the same error magnitude costs more late than early, as the protocol intends."""
    assert phm08_score([110], [100]) > phm08_score([90], [100])


def test_confusion_matrix_three_class_toy() -> None:
    """Test that rows are true classes and columns predicted classes."""
    expected = np.array(
        [
            [2, 1, 0],  # true 0: two right, one called 1
            [0, 1, 1],  # true 1: one right, one called 2
            [0, 0, 1],  # true 2: right
        ]
    )
    np.testing.assert_array_equal(confusion_matrix(PRED3, TRUE3, 3), expected)


def test_accuracy_three_class_toy() -> None:
    """Test that accuracy counts exact matches: 4 of 6."""
    assert accuracy(PRED3, TRUE3) == pytest.approx(4 / 6)


def test_macro_f1_three_class_toy() -> None:
    """Test that macro F1 is the plain mean of per-class F1 = 2tp / (2tp + fp + fn)."""
    # class 0: tp 2, fp 0, fn 1 -> 4/5; class 1: tp 1, fp 1, fn 1 -> 2/4;
    # class 2: tp 1, fp 1, fn 0 -> 2/3.  Mean = (0.8 + 0.5 + 0.6667) / 3 = 0.655556.
    assert macro_f1(PRED3, TRUE3, 3) == pytest.approx((4 / 5 + 2 / 4 + 2 / 3) / 3)


def test_macro_f1_ignores_class_absent_everywhere() -> None:
    """Test that a class never seen nor predicted does not drag the mean up or down."""
    assert macro_f1(PRED3, TRUE3, 4) == pytest.approx(macro_f1(PRED3, TRUE3, 3))


def test_labels_out_of_range_rejected() -> None:
    """Test that a label outside [0, n_classes) is an error, not a silently dropped row."""
    with pytest.raises(ValueError, match="labels must be integers"):
        confusion_matrix([0, 3], [0, 1], 3)


def test_roc_auc_perfect_separation() -> None:
    """Test that AUC is 1 when every positive outscores every negative (0 when reversed)."""
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0


def test_roc_auc_identical_scores() -> None:
    """Test that AUC is 0.5 when all scores tie, since every pair counts half."""
    assert roc_auc([0.3] * 5, [True, False, True, False, False]) == 0.5


def test_roc_auc_tie_case() -> None:
    """Test that a positive tied with a negative counts half a win."""
    # Pairs (pos, neg): (0.5, 0.2) win, (0.5, 0.5) tie = 1/2, (0.9, 0.2) win, (0.9, 0.5) win.
    # AUC = 3.5 / 4 = 0.875.
    assert roc_auc(TIE_SCORES, TIE_LABELS) == pytest.approx(0.875)


def test_roc_auc_needs_both_classes() -> None:
    """Test that AUC with only one class present is an error, not a misleading number."""
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc([0.1, 0.2], [1, 1])


def test_roc_curve_tie_case() -> None:
    """Test that ROC points follow 'alarm when score > threshold' and their area is the AUC."""
    fpr, tpr, thresholds = roc_curve(TIE_SCORES, TIE_LABELS)
    np.testing.assert_array_equal(thresholds, [0.9, 0.5, 0.2, -np.inf])
    np.testing.assert_array_equal(fpr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 0.5, 1.0, 1.0])
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(TIE_SCORES, TIE_LABELS))


def test_false_alarm_rate() -> None:
    """Test that false alarms count normals strictly above the threshold."""
    normals = [0.1, 0.5, 0.5, 0.9]
    assert false_alarm_rate(normals, 0.5) == 0.25
    assert false_alarm_rate(normals, 0.0) == 1.0
    assert false_alarm_rate(normals, 0.9) == 0.0


def test_roc_curve_fpr_matches_false_alarm_rate() -> None:
    """Test that a threshold read off the ROC curve gives the same false-alarm rate in use."""
    negatives = [0.2, 0.5]
    fpr, _, thresholds = roc_curve(TIE_SCORES, TIE_LABELS)
    for rate, threshold in zip(fpr, thresholds, strict=True):
        assert false_alarm_rate(negatives, threshold) == rate


def test_mismatched_or_non_finite_inputs_rejected() -> None:
    """Test that shape mismatches and NaN raise instead of returning a plausible number."""
    with pytest.raises(ValueError, match="pred has 2 values but true has 3"):
        rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        phm08_score([np.nan], [1.0])
    with pytest.raises(ValueError, match="empty"):
        false_alarm_rate([], 0.5)
