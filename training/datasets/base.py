"""What every dataset adapter hands the trainer: raw windows and targets, split three ways."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    windows: np.ndarray  # (n, window, channels) raw samples, before the front end
    targets: np.ndarray  # class index (classification), RUL (rul), 1 = anomalous (anomaly)
    tags: list[str] = field(default_factory=list)  # per-window note, e.g. the fault name
    # Per window: which run of consecutive windows it belongs to (score smoothing restarts at
    # each run); which stream (recording file) it comes from and the stream row of its last
    # sample (the per-stream baseline). None where the dataset has no such order.
    runs: np.ndarray | None = None
    streams: np.ndarray | None = None
    ends: np.ndarray | None = None


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
