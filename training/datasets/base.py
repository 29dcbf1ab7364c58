"""What every dataset adapter hands the trainer: raw windows and targets, split three ways."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from training.timeline import Timeline


@dataclass(frozen=True)
class Split:
    windows: np.ndarray  # (n, window, channels) raw samples, before the front end
    targets: np.ndarray  # class index (classification), RUL (rul), 1 = anomalous (anomaly)
    tags: list[str] = field(default_factory=list)  # per-window note, e.g. the fault name
    # Per window: which run of consecutive windows it belongs to (score smoothing restarts at
    # each run, as the agent's windower restarts at a clock break); which stream (recording
    # file) it comes from and the stream row of its last sample (the per-stream baseline).
    # None where the dataset has no such order.
    runs: np.ndarray | None = None
    streams: np.ndarray | None = None
    rows: np.ndarray | None = None
    # False for windows the agent computes too but that are not evaluated (those ending in the
    # probationary period): they feed the score smoothing only. None: every window is evaluated.
    scored: np.ndarray | None = None
    # Where each window lies on `timeline` (first and last sample), for test splits of
    # recordings: what point-wise and event-wise figures are computed on.
    starts: np.ndarray | None = None
    ends: np.ndarray | None = None
    timeline: Timeline | None = None

    def select(self, keep: np.ndarray) -> Split:
        """The windows where `keep` is True, every per-window field alike."""
        keep = np.asarray(keep, dtype=bool)
        per_window = ("runs", "streams", "rows", "scored", "starts", "ends")
        return replace(
            self,
            windows=self.windows[keep],
            targets=self.targets[keep],
            tags=[tag for tag, kept in zip(self.tags, keep) if kept] if self.tags else [],
            **{
                name: None if getattr(self, name) is None else getattr(self, name)[keep]
                for name in per_window
            },
        )

    def evaluated(self) -> Split:
        """The windows that are evaluated (all but those only feeding the smoothing)."""
        return self if self.scored is None else self.select(self.scored)


@dataclass(frozen=True)
class TaskData:
    name: str
    fingerprint: str
    channels: list[str]
    sample_rate_hz: float | None
    train: Split
    val: Split
    test: Split
    train_rows: np.ndarray  # distinct training samples (rows, channels), for channel statistics
    test_description: str
    labels: list[str] | None = None
    notes: list[str] = field(default_factory=list)  # what reading the data found (gaps, steps)
    streams: list[np.ndarray] = field(default_factory=list)  # raw rows of each stream, in order
