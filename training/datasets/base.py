"""What every dataset adapter hands the trainer: raw windows and targets, split three ways."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.timeline import Timeline


@dataclass(frozen=True)
class Split:
    windows: np.ndarray  # (n, window, channels) raw samples, before the front end
    targets: np.ndarray  # class index (classification), RUL (rul), 1 = anomalous (anomaly)
    tags: list[str] = field(default_factory=list)  # per-window note, e.g. the fault name
    # Where each window lies on `timeline` (first and last sample), for test splits of
    # recordings: what point-wise and event-wise figures are computed on.
    starts: np.ndarray | None = None
    ends: np.ndarray | None = None
    timeline: Timeline | None = None


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
