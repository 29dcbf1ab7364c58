"""Point-wise and event-wise anomaly figures on the sample timeline, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.timeline import Timeline, anomaly_report, held_verdicts

MINUTE = 60.0


def _timeline(n: int, anomalous: list[int], scored_from: int, part: list[int] | None = None):
    is_anomalous = np.zeros(n, dtype=bool)
    is_anomalous[anomalous] = True
    return Timeline(
        times=np.arange(n) * MINUTE,
        anomalous=is_anomalous,
        scored=np.arange(n) >= scored_from,
        part=np.zeros(n, dtype=int) if part is None else np.asarray(part),
    )


# 12 samples a minute apart, samples 5-7 in a labelled window; windows of 3 at hop 2 end on
# samples 2, 4, 6, 8, 10. The window ending on 6 (samples 4-6) straddles the window's start and
# counts as anomalous (last sample); the one ending on 8 (6-8) straddles its end and is normal.
ENDS = np.array([2, 4, 6, 8, 10])
VERDICTS = np.array([False, True, True, False, True])
SCORES = np.array([0.1, 0.5, 0.9, 0.2, 0.6])


def test_verdict_holds_until_the_next_one() -> None:
    """Test that a sample holds the verdict placed last at or before it, none before the first."""
    held = held_verdicts(_timeline(12, [5, 6, 7], 0), ENDS, VERDICTS)
    assert held.tolist() == [-1, -1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1]


def test_point_and_event_figures_by_hand() -> None:
    """Test every figure on a case worked by hand, including windows straddling a label edge."""
    report = anomaly_report(_timeline(12, [5, 6, 7], 2), ENDS, SCORES, VERDICTS)
    # samples 2..11 scored; alarmed 4,5,6,7,10,11; anomalous 5,6,7
    assert report["scored_samples"] == 10 and report["unscored_samples"] == 0
    assert report["point_precision"] == pytest.approx(3 / 6)
    assert report["point_recall"] == 1.0
    assert report["point_f1"] == pytest.approx(2 * 3 / (2 * 3 + 3 + 0))
    assert report["point_false_alarm_rate"] == pytest.approx(3 / 7)
    assert report["point_missed_alarm_rate"] == 0.0
    # windows: labels F F T F F by their last sample
    assert report["windows"] == 5
    assert report["roc_auc"] == 1.0
    assert report["detection_rate"] == 1.0
    assert report["false_alarm_rate"] == 0.5
    assert report["events"] == 1 and report["events_detected"] == 1
    # abnormal verdicts outside the event: on sample 4, then on 10 (after a normal one): 2 runs
    assert report["false_alarm_events"] == 2
    assert report["scored_days"] == pytest.approx(10 * MINUTE / 86400)
    assert report["false_alarms_per_day"] == pytest.approx(2 / (10 * MINUTE / 86400))


def test_probation_cut_ignores_verdicts_and_samples_before_it() -> None:
    """Test that verdicts placed in the probationary period hold nothing after the cut."""
    report = anomaly_report(_timeline(12, [5, 6, 7], 5), ENDS, SCORES, VERDICTS)
    # sample 5 holds no verdict (the one on 4 is in probation); 6-11 hold T T F F T T
    assert report["unscored_samples"] == 1 and report["scored_samples"] == 6
    assert report["point_precision"] == 0.5 and report["point_recall"] == 1.0
    assert report["point_false_alarm_rate"] == 0.5
    assert report["windows"] == 3
    assert report["events"] == 1 and report["events_detected"] == 1
    assert report["false_alarm_events"] == 1


def test_missed_event_and_no_alarm_at_all() -> None:
    """Test that an event without an abnormal verdict placed inside counts as missed, and that
    precision without any alarm is 0 (scikit-learn's zero_division=0)."""
    quiet = np.zeros(5, dtype=bool)
    report = anomaly_report(_timeline(12, [5, 6, 7], 0), ENDS, SCORES, quiet)
    assert report["events_detected"] == 0 and report["event_detection_rate"] == 0.0
    assert report["point_precision"] == 0.0 and report["point_recall"] == 0.0
    assert report["point_f1"] == 0.0 and report["point_missed_alarm_rate"] == 1.0
    assert report["false_alarm_events"] == 0
    # an alarm held into the event from before it is not a detection: only placed verdicts count
    early = np.array([False, True, False, False, False])
    ends = np.array([2, 4, 8, 9, 10])
    report = anomaly_report(_timeline(12, [5, 6, 7], 0), ends, SCORES, early)
    assert report["events_detected"] == 0 and report["point_recall"] == 1.0


def test_gap_and_recording_boundaries() -> None:
    """Test that a verdict holds across a time gap but not into the next recording, that the
    gap is not counted as scored time, and that a new recording ends a false-alarm run."""
    timeline = Timeline(
        times=np.r_[np.arange(6) * MINUTE, 1e6 + np.arange(6) * MINUTE],
        anomalous=np.zeros(12, dtype=bool),
        scored=np.ones(12, dtype=bool),
        part=np.r_[np.zeros(6, int), np.ones(6, int)],
    )
    ends, verdicts = np.array([1, 5, 8, 10]), np.array([True, True, True, False])
    held = held_verdicts(timeline, ends, verdicts)
    assert held.tolist() == [-1, 1, 1, 1, 1, 1, -1, -1, 1, 1, 0, 0]
    report = anomaly_report(timeline, ends, np.arange(4.0), verdicts)
    assert report["unscored_samples"] == 3
    assert report["false_alarm_events"] == 2  # 1-5 in the first recording, 8 in the second
    assert report["scored_days"] == pytest.approx(12 * MINUTE / 86400)
    assert "point_recall" not in report and report["events"] == 0
    gap = _timeline(12, [], 0)
    gap = Timeline(np.r_[gap.times[:6], 1e6 + gap.times[6:]], gap.anomalous, gap.scored, gap.part)
    assert held_verdicts(gap, ends, verdicts).tolist()[6:8] == [1, 1]  # held across the gap
    # a day of scored data counts samples at the median step: the gap is not observed time
    days = anomaly_report(gap, ends, np.arange(4.0), verdicts)["scored_days"]
    assert days == pytest.approx(12 * MINUTE / 86400)


def test_locate_matches_repeated_times_in_order() -> None:
    """Test that window ends are matched to positions in order, through a clock step back."""
    times = np.array([0.0, 300, 600, 900, 600, 900, 1200])  # the clock steps back after 900
    timeline = Timeline(times, np.zeros(7, bool), np.ones(7, bool), np.zeros(7, int))
    assert timeline.locate(np.array([600.0, 900, 900, 1200])).tolist() == [2, 3, 5, 6]
    assert timeline.locate(np.array([900.0, 600, 42.0])).tolist() == [3, 4, -1]


def test_mismatched_inputs_are_refused() -> None:
    """Test that verdicts not lining up with window ends, or two windows on one sample, fail."""
    timeline = _timeline(12, [5], 0)
    with pytest.raises(ValueError, match="same sample"):
        held_verdicts(timeline, np.array([3, 3]), np.array([True, False]))
    with pytest.raises(ValueError, match="verdicts"):
        held_verdicts(timeline, np.array([3, 4]), np.array([True]))
