"""The shadow run: a candidate model scores the same live windows as the running one, without
publishing, and the two are compared window by window before the candidate may take over."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edge_agent.alarm import AlarmState, judge
from edge_agent.config.models import AlarmConfig
from edge_agent.events import Event, Result


@dataclass
class Tap:
    """A sink that keeps each result's output by window end (the shadow's side channel)."""

    outputs: dict[float, dict[str, Any]] = field(default_factory=dict)

    def emit(self, event: Event) -> None:
        if isinstance(event, Result):
            self.outputs[round(event.window_end, 6)] = event.output

    def flush(self) -> None:
        pass

    def close(self, timeout: float = 0.0) -> None:
        pass


def compare(
    task: str, live: dict[float, dict], candidate: dict[float, dict], alarm: AlarmConfig
) -> dict[str, Any]:
    """Agreement over the windows both models scored: decisions (abnormal or not, the rule the
    alarm uses), labels or scores, and the alarm states each would have had."""
    ends = sorted(set(live) & set(candidate))
    if not ends:
        return {"windows": 0, "decision_agreement": None}
    old = [live[t] for t in ends]
    new = [candidate[t] for t in ends]
    verdicts = [(judge(task, a, alarm)[0], judge(task, b, alarm)[0]) for a, b in zip(old, new)]
    states = (AlarmState(alarm), AlarmState(alarm))
    alarm_differs = 0
    for t, (a, b), (out_a, out_b) in zip(ends, verdicts, zip(old, new)):
        states[0].update(a, judge(task, out_a, alarm)[1], t)
        states[1].update(b, judge(task, out_b, alarm)[1], t)
        alarm_differs += states[0].active != states[1].active
    report: dict[str, Any] = {
        "windows": len(ends),
        "decision_agreement": sum(a == b for a, b in verdicts) / len(ends),
        "alarm_windows_differing": alarm_differs,
    }
    if task == "classification":
        report["label_agreement"] = sum(a["label"] == b["label"] for a, b in zip(old, new)) / len(
            ends
        )
    elif task == "anomaly":
        report["score_correlation"] = _correlation(
            [a["score"] for a in old], [b["score"] for b in new]
        )
    else:
        report["rul_mean_abs_diff"] = sum(abs(a["rul"] - b["rul"]) for a, b in zip(old, new)) / len(
            ends
        )
    return report


def _correlation(x: list[float], y: list[float]) -> float | None:
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)
