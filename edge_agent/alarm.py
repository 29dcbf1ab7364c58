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
from typing import Any, Literal

from edge_agent.config.models import AlarmConfig

Severity = Literal["warning", "critical"]


def judge(task: str, output: dict[str, Any], config: AlarmConfig) -> tuple[bool, Severity]:
    """(abnormal?, severity if so) for one result; runs per window, so it stays cheap."""
    if task == "classification":
        return output["label"] not in config.normal_labels, "warning"
    if task == "anomaly":
        score, threshold = output["score"], output["threshold"]
        return (
            score > threshold,
            "critical" if score > threshold * config.critical_factor else "warning",
        )
    rul = output["rul"]
    return rul < config.rul_below, "critical" if rul < config.rul_critical_below else "warning"


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

    def update(
        self, abnormal: bool, severity: Severity, at: float
    ) -> Literal["raised", "cleared", "escalated"] | None:
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
