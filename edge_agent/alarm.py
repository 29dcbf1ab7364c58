"""Alarm state per model: N-of-M or N-consecutive debounce with hysteresis, and a severity.

A window is abnormal when the classifier names a fault label, the anomaly score exceeds the
threshold, or the RUL falls below `rul_below`. The alarm is raised when `raise_count` of the
last `window_count` windows are abnormal (rule `n_of_m`) or the last `raise_count` windows in a
row are (rule `consecutive`), and cleared when at most `clear_count` of the last `window_count`
are, so a single noisy window cannot raise it and a flapping signal cannot toggle it every
window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

from edge_agent.config.models import AlarmConfig

Severity = Literal["warning", "critical"]
Transition = Literal["raised", "cleared", "escalated"]


def judge(task: str, output: dict[str, Any], config: AlarmConfig) -> tuple[bool, Severity]:
    """(abnormal?, severity if so) for one result."""
    return judge_many(task, [output], config)[0]


def judge_many(
    task: str, outputs: Sequence[dict[str, Any]], config: AlarmConfig
) -> list[tuple[bool, Severity]]:
    """`judge` of each result of a batch, in order; runs on every result, so it stays cheap."""
    if task == "classification":
        normal = set(config.normal_labels)
        return [(output["label"] not in normal, "warning") for output in outputs]
    if task == "anomaly":
        factor = config.critical_factor
        return [
            (
                output["score"] > output["threshold"],
                "critical" if output["score"] > output["threshold"] * factor else "warning",
            )
            for output in outputs
        ]
    below, critical = config.rul_below, config.rul_critical_below
    return [
        (output["rul"] < below, "critical" if output["rul"] < critical else "warning")
        for output in outputs
    ]


def reason(task: str, output: dict[str, Any], config: AlarmConfig) -> str:
    """Why a window is abnormal, for the alarm event (built only on a transition)."""
    if task == "classification":
        return f"label {output['label']}"
    if task == "anomaly":
        return f"score {output['score']:.4g} > threshold {output['threshold']:.4g}"
    return f"rul {output['rul']:.1f} < {config.rul_below:g}"


class AlarmState:
    def __init__(self, config: AlarmConfig) -> None:
        self.config = config
        self.recent: deque[bool] = deque(maxlen=config.window_count)
        self.abnormal_count = 0  # abnormal windows in `recent`, kept incrementally
        self.streak = 0  # abnormal windows in a row, up to the latest
        self.consecutive = config.rule == "consecutive"
        self.active = False
        self.severity: Severity | None = None
        self.since: float | None = None

    def update(self, abnormal: bool, severity: Severity, at: float) -> Transition | None:
        """Feed one window's verdict; return the transition it caused, if any."""
        if len(self.recent) == self.recent.maxlen and self.recent[0]:
            self.abnormal_count -= 1
        self.recent.append(abnormal)
        self.abnormal_count += abnormal
        self.streak = self.streak + 1 if abnormal else 0
        count = self.abnormal_count
        if not self.active and (self.streak if self.consecutive else count) >= (
            self.config.raise_count
        ):
            self.active, self.severity, self.since = True, severity, at
            return "raised"
        if self.active and count <= self.config.clear_count:
            self.active, self.severity, self.since = False, None, at
            return "cleared"
        if self.active and abnormal and severity == "critical" and self.severity == "warning":
            self.severity = "critical"
            return "escalated"
        return None

    def update_many(
        self, verdicts: Sequence[tuple[bool, Severity]], ats: Sequence[float]
    ) -> list[tuple[int, Transition, Severity | None]]:
        """`update` for consecutive windows: (index, transition, severity after it) of each
        transition, as window-by-window updates give. A batch that cannot change the state (no
        abnormal window while clear; only abnormal ones, none escalating, while raised) only
        moves the counts: the common case costs no call per window."""
        abnormal = [verdict for verdict, _ in verdicts]
        quiet = not self.active and not any(abnormal)
        held = (
            self.active
            and all(abnormal)
            and (self.severity == "critical" or all(s == "warning" for _, s in verdicts))
        )
        if quiet or held:  # raised: the count cannot fall, so it stays above clear_count
            self.recent.extend(abnormal)
            self.abnormal_count = sum(self.recent)
            self.streak = self.streak + len(abnormal) if held else 0
            return []
        changes = []
        for index, ((bad, severity), at) in enumerate(zip(verdicts, ats)):
            change = self.update(bad, severity, at)
            if change is not None:
                changes.append((index, change, self.severity))
        return changes
