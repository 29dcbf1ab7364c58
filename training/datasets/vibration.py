"""Datasets from the synthetic vibration simulator, with test records at unseen seeds and speeds."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from edge_agent.frontend.windowing import sliding_windows
from edge_agent.sim.vibration import CHANNELS, generate, random_conditions
from training.config import SyntheticVibrationData
from training.datasets.base import Split, TaskData

HEALTHY = "healthy"
_TRAIN_SEED_OFFSET, _TEST_SEED_OFFSET = 1_000_000, 2_000_000


def _records(
    fault: str,
    n_records: int,
    speeds: list[tuple[float, float]],
    window: int,
    hop: int,
    windows_per_record: int,
    sample_rate_hz: float,
    seed: int,
) -> np.ndarray:
    """Windows from `n_records` independent machines, speeds drawn across the given ranges."""
    rng = np.random.default_rng(seed)
    n_samples = window + hop * (windows_per_record - 1)
    out = []
    for i in range(n_records):
        low, high = speeds[i % len(speeds)]
        conditions = random_conditions(rng, fault, shaft_hz_range=(low, high))
        record = generate(conditions, n_samples, sample_rate_hz, seed=int(rng.integers(2**31)))
        out.append(sliding_windows(record, window, hop))
    return np.concatenate(out).astype(np.float32)


def _fingerprint(data: SyntheticVibrationData, seed: int, window: int, hop: int) -> str:
    recipe = json.dumps([data.model_dump(mode="json"), seed, window, hop], sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()


def build(data: SyntheticVibrationData, task: str, window: int, hop: int, seed: int) -> TaskData:
    """Classification uses every fault; anomaly trains on healthy only and tests on all."""
    train_faults = data.faults if task == "classification" else [HEALTHY]

    def make(faults: list[str], n: int, speeds: list, offset: int) -> tuple[list, list]:
        chunks, tags = [], []
        for index, fault in enumerate(faults):
            windows = _records(
                fault,
                n,
                speeds,
                window,
                hop,
                data.windows_per_record,
                data.sample_rate_hz,
                seed + offset + 1000 * index,
            )
            chunks.append(windows)
            tags += [fault] * len(windows)
        return chunks, tags

    fit_chunks, fit_tags = make(
        train_faults, data.records_per_class, data.train_speeds_hz, _TRAIN_SEED_OFFSET
    )
    test_chunks, test_tags = make(
        data.faults, data.test_records_per_class, data.test_speeds_hz, _TEST_SEED_OFFSET
    )
    fit_windows = np.concatenate(fit_chunks)
    test_windows = np.concatenate(test_chunks)

    # Validation holds out whole records so near-identical windows never straddle the split.
    per_record = data.windows_per_record
    n_records = len(fit_windows) // per_record
    rng = np.random.default_rng(seed)
    is_val_record = rng.random(n_records) < data.validation_fraction
    if is_val_record.all() or not is_val_record.any():
        is_val_record = np.arange(n_records) % 2 == 1  # too few records for chance: alternate
    is_val = np.repeat(is_val_record, per_record)

    if task == "classification":
        fit_targets = np.array([data.faults.index(t) for t in fit_tags])
        test_targets = np.array([data.faults.index(t) for t in test_tags])
    else:
        fit_targets = np.zeros(len(fit_tags), dtype=np.int64)
        test_targets = np.array([int(t != HEALTHY) for t in test_tags])

    fit_tags_arr = np.array(fit_tags)
    fit_runs = np.arange(len(fit_windows)) // per_record  # a record's windows follow each other
    train = Split(
        fit_windows[~is_val],
        fit_targets[~is_val],
        list(fit_tags_arr[~is_val]),
        runs=fit_runs[~is_val],
    )
    val = Split(
        fit_windows[is_val], fit_targets[is_val], list(fit_tags_arr[is_val]), runs=fit_runs[is_val]
    )
    return TaskData(
        name="synthetic_vibration",
        fingerprint=_fingerprint(data, seed, window, hop),
        channels=list(CHANNELS),
        sample_rate_hz=data.sample_rate_hz,
        train=train,
        val=val,
        test=Split(
            test_windows, test_targets, test_tags, runs=np.arange(len(test_windows)) // per_record
        ),
        train_rows=train.windows.reshape(-1, len(CHANNELS)),
        test_description=(
            f"{data.test_records_per_class} unseen-seed records per class at unseen shaft speeds "
            f"{data.test_speeds_hz} Hz"
        ),
        labels=list(data.faults) if task == "classification" else None,
    )
