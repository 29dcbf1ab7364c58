"""Scoring anomaly verdicts on the sample timeline, identically for `evaluate` and `score`.

The rules (docs/training.md, "Evaluation"):
- A window's verdict is placed at its last sample (the agent's `window.end`).
- A verdict holds from its sample up to the sample before the next verdict's, within one
  recording, also across a time gap (the device's state does not change while no data comes).
  Samples before the first verdict of a recording have none and are not scored point-wise.
- Only samples after the probationary period are scored; verdicts placed in it are ignored.
- Point-wise figures count samples: a sample is anomalous when it lies in a labelled window
  (or its label column says so), alarmed when the verdict it holds is abnormal.
- A labelled event is a maximal run of anomalous scored samples of one recording; it is detected
  when an abnormal verdict is placed on one of its samples.
- A false alarm is a run of consecutive abnormal verdicts placed on normal samples (a normal
  verdict, a verdict inside an event, or another recording ends the run); per day of scored data,
  the scored samples times the median time step.
- Undefined ratios follow scikit-learn's zero_division=0: precision without any alarm is 0.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training import metrics

DAY_S = 86400.0
COUNTS = ("windows", "scored_samples", "unscored_samples", "events", "events_detected")
COUNTS += ("false_alarm_events",)
# What training adds to a bundle's metrics beside its window-level figures.
TIMELINE_FIGURES = ("point_precision", "point_recall", "point_f1", "point_false_alarm_rate")
TIMELINE_FIGURES += ("events", "events_detected", "false_alarms_per_day")


@dataclass(frozen=True)
class Timeline:
    """The samples verdicts are scored against, recordings one after the other in file order.

    `times` are unix seconds when `real_time`, else row numbers; a recording whose clock steps
    back has repeated times, so samples are identified by position, never by time alone."""

    times: np.ndarray  # (n,) float64
    anomalous: np.ndarray  # (n,) bool
    scored: np.ndarray  # (n,) bool: False in the probationary period
    part: np.ndarray  # (n,) int: which recording; verdicts never hold across recordings
    # Prints a time in the recording's own layout (not kept per row: a long recording's text
    # would cost more memory than its samples); None: unix seconds or row numbers.
    formatter: Callable[[float], str] | None = None
    real_time: bool = True

    def __post_init__(self) -> None:
        n = len(self.times)
        if any(len(array) != n for array in (self.anomalous, self.scored, self.part)):
            raise ValueError("timeline arrays differ in length")

    def __len__(self) -> int:
        return len(self.times)

    def stamp(self, index: int) -> str:
        """A sample's time in the recording's layout (unix seconds or row number otherwise)."""
        value = float(self.times[index])
        return self.formatter(value) if self.formatter is not None else repr(value)

    @staticmethod
    def join(timelines: list[Timeline]) -> Timeline:
        """Recordings one after the other; each keeps its own part (times print in the first
        recording's layout: one dataset reads all its files alike)."""
        parts, offset = [], 0
        for timeline in timelines:
            parts.append(timeline.part + offset)
            offset += int(timeline.part.max()) + 1 if len(timeline) else 0
        return Timeline(
            np.concatenate([t.times for t in timelines]),
            np.concatenate([t.anomalous for t in timelines]),
            np.concatenate([t.scored for t in timelines]),
            np.concatenate(parts),
            timelines[0].formatter if timelines else None,
            all(t.real_time for t in timelines),
        )

    def locate(self, ends: np.ndarray) -> np.ndarray:
        """Sample index of each window end (in result order), -1 where none matches.

        Ends are matched in order, each after the one before, so the repeated times of a clock
        that stepped back resolve to the right occurrence."""
        where: dict[float, list[int]] = {}
        for index, value in enumerate(self.times.tolist()):
            where.setdefault(value, []).append(index)
        out = np.full(len(ends), -1, dtype=np.intp)
        position = 0
        for i, value in enumerate(np.asarray(ends, dtype=np.float64).tolist()):
            found = where.get(value, [])
            k = bisect.bisect_left(found, position)
            if k < len(found):
                out[i] = found[k]
                position = found[k] + 1
        return out


def held_verdicts(timeline: Timeline, ends: np.ndarray, verdicts: np.ndarray) -> np.ndarray:
    """The verdict each sample holds: 1 abnormal, 0 normal, -1 none (see the module rules)."""
    ends, verdicts = _scored_verdicts(timeline, ends, verdicts)
    n = len(timeline)
    placed = np.full(n, -1, dtype=np.int8)
    placed[ends] = verdicts
    index = np.arange(n)
    last = np.maximum.accumulate(np.where(placed >= 0, index, -1))
    part_start = np.flatnonzero(np.r_[True, timeline.part[1:] != timeline.part[:-1]])
    first = part_start[np.searchsorted(part_start, index, side="right") - 1]
    out = np.full(n, -1, dtype=np.int8)
    valid = last >= first
    out[valid] = placed[last[valid]]
    return out


def _scored_verdicts(
    timeline: Timeline, ends: np.ndarray, verdicts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    ends = np.asarray(ends, dtype=np.intp)
    verdicts = np.asarray(verdicts, dtype=bool)
    if ends.shape != verdicts.shape:
        raise ValueError(f"{ends.size} window ends but {verdicts.size} verdicts")
    if ends.size and (ends.min() < 0 or ends.max() >= len(timeline)):
        raise ValueError("a window end lies outside the timeline")
    if np.unique(ends).size != ends.size:
        raise ValueError("two windows end on the same sample")
    keep = timeline.scored[ends]
    order = np.argsort(ends[keep], kind="stable")
    return ends[keep][order], verdicts[keep][order]


def _runs(mask: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, stop) of each maximal run of True that stays inside one part."""
    same = np.r_[False, part[1:] == part[:-1]]
    before = np.r_[False, mask[:-1]] & same
    after = np.r_[mask[1:], False] & np.r_[same[1:], False]
    return np.flatnonzero(mask & ~before), np.flatnonzero(mask & ~after) + 1


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def anomaly_report(
    timeline: Timeline, ends: np.ndarray, scores: np.ndarray, verdicts: np.ndarray
) -> dict[str, float]:
    """Window-level ROC AUC and rates, point-wise and event-wise figures of one set of verdicts.

    ends: the sample index of each window's last sample; scores and verdicts per window."""
    ends = np.asarray(ends, dtype=np.intp)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != ends.shape:
        raise ValueError(f"{ends.size} window ends but {scores.size} scores")
    keep = timeline.scored[ends]
    window_ends, window_alarm = ends[keep], np.asarray(verdicts, dtype=bool)[keep]
    if not window_ends.size:
        raise ValueError("no window ends in the scored part of the data")
    labels = timeline.anomalous[window_ends]
    out: dict[str, float] = {"windows": float(window_ends.size)}
    if labels.any() and not labels.all():
        out["roc_auc"] = metrics.roc_auc(scores[keep], labels)
    if labels.any():
        out["detection_rate"] = float(window_alarm[labels].mean())
    if not labels.all():
        out["false_alarm_rate"] = float(window_alarm[~labels].mean())

    held = held_verdicts(timeline, ends, verdicts)
    covered = timeline.scored & (held >= 0)
    alarm, truth = held[covered] == 1, timeline.anomalous[covered]
    tp = int(np.count_nonzero(alarm & truth))
    fp = int(np.count_nonzero(alarm & ~truth))
    fn = int(np.count_nonzero(~alarm & truth))
    tn = int(np.count_nonzero(~alarm & ~truth))
    out["scored_samples"] = float(covered.sum())
    out["unscored_samples"] = float(np.count_nonzero(timeline.scored & ~covered))
    if tp + fn:
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        out["point_precision"] = precision
        out["point_recall"] = recall
        out["point_f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
        out["point_missed_alarm_rate"] = _ratio(fn, tp + fn)
    if fp + tn:
        out["point_false_alarm_rate"] = _ratio(fp, fp + tn)

    starts, stops = _runs(timeline.anomalous & timeline.scored, timeline.part)
    ordered_ends, ordered_alarm = _scored_verdicts(timeline, ends, verdicts)
    alarm_at = np.zeros(len(timeline) + 1, dtype=np.intp)
    alarm_at[ordered_ends[ordered_alarm] + 1] = 1
    alarms_before = np.cumsum(alarm_at)  # alarms_before[i]: abnormal verdicts placed before i
    detected = int(np.count_nonzero(alarms_before[stops] > alarms_before[starts]))
    out["events"] = float(starts.size)
    if starts.size:
        out["events_detected"] = float(detected)
        out["event_detection_rate"] = detected / starts.size
    outside = ordered_alarm & ~timeline.anomalous[ordered_ends]
    parts = timeline.part[ordered_ends]
    continues = np.r_[False, outside[:-1] & (parts[1:] == parts[:-1])]
    false_alarms = int(np.count_nonzero(outside & ~continues))
    out["false_alarm_events"] = float(false_alarms)
    days = _scored_days(timeline)
    if days is not None:
        out["scored_days"] = days
        out["false_alarms_per_day"] = false_alarms / days
    return out


def _scored_days(timeline: Timeline) -> float | None:
    """Scored samples times the median forward step inside recordings, in days (gaps excluded)."""
    if not timeline.real_time:
        return None
    steps = np.diff(timeline.times)[timeline.part[1:] == timeline.part[:-1]]
    forward = steps[steps > 0]
    if not forward.size:
        return None
    return float(np.count_nonzero(timeline.scored) * np.median(forward) / DAY_S)
