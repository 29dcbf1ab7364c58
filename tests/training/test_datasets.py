"""Dataset adapters: windows and targets follow the protocol, and held-out data is really unseen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.config import CmapssData, SyntheticVibrationData
from training.datasets import cmapss, vibration


def test_cmapss_windows_and_targets(cmapss_dir: Path) -> None:
    """Test window counts, capped end-of-window targets and last-window test scoring on FD001."""
    data = cmapss.build(CmapssData(kind="cmapss", directory=cmapss_dir), 30, 1, 125.0, seed=7)
    engines = cmapss.load_engines(cmapss_dir, "FD001", "train")
    fit, val = cmapss.split_units(engines, 0.2, 7)
    assert len(data.train.windows) == sum(len(e.cycles) - 29 for e in fit)
    assert len(data.val.windows) == sum(len(e.cycles) - 29 for e in val)
    first = fit[0]
    np.testing.assert_array_equal(data.train.windows[0], first.values[:30].astype(np.float32))
    # Window 0 ends at row 29; its target is that row's RUL, capped.
    assert data.train.targets[0] == min(first.rul[29], 125.0)
    assert data.train.targets.max() == 125.0 and data.train.targets.min() == 0.0
    tests = cmapss.load_engines(cmapss_dir, "FD001", "test")
    assert data.test.windows.shape == (100, 30, 14)
    np.testing.assert_array_equal(data.test.windows[5], tests[5].values[-30:].astype(np.float32))
    np.testing.assert_array_equal(data.test.targets, [e.rul[-1] for e in tests])
    assert data.train_rows.shape == (sum(len(e.cycles) for e in fit), 14)


def test_vibration_split_uses_unseen_speeds_and_whole_records() -> None:
    """Test that test records come from the test speed bands and validation takes whole records."""
    config = SyntheticVibrationData(
        kind="synthetic_vibration",
        sample_rate_hz=12800.0,
        faults=["healthy", "imbalance"],
        records_per_class=6,
        test_records_per_class=3,
        windows_per_record=2,
        validation_fraction=0.5,
        train_speeds_hz=[(15.0, 16.0)],
        test_speeds_hz=[(40.0, 41.0)],
    )
    data = vibration.build(config, "classification", window=2048, hop=1024, seed=1)
    assert data.labels == ["healthy", "imbalance"]
    assert len(data.train.windows) + len(data.val.windows) == 2 * 6 * 2
    assert len(data.test.windows) == 2 * 3 * 2
    # Imbalance at 40 Hz shows its 1x line at 40 Hz; at 15-16 Hz in training it cannot.
    spectrum = np.abs(np.fft.rfft(data.test.windows[data.test.targets == 1][0][:, 0]))
    peak_hz = (np.argmax(spectrum[1:]) + 1) * 12800.0 / 2048
    assert 35.0 <= peak_hz <= 46.0
    # Consecutive windows of one record overlap by `hop`; the split must keep them together.
    for split in (data.train, data.val):
        pairs = split.windows.reshape(-1, 2, 2048, 3)
        np.testing.assert_array_equal(pairs[:, 0, 1024:], pairs[:, 1, :1024])


def test_vibration_anomaly_trains_on_healthy_only() -> None:
    """Test that the anomaly task never sees a fault in training and labels faults 1 in test."""
    config = SyntheticVibrationData(
        kind="synthetic_vibration",
        sample_rate_hz=12800.0,
        faults=["healthy", "bearing_outer"],
        records_per_class=4,
        test_records_per_class=2,
        windows_per_record=1,
        train_speeds_hz=[(15.0, 20.0)],
        test_speeds_hz=[(20.0, 25.0)],
    )
    data = vibration.build(config, "anomaly", window=2048, hop=2048, seed=2)
    assert set(data.train.tags) | set(data.val.tags) == {"healthy"}
    assert data.test.tags == ["healthy"] * 2 + ["bearing_outer"] * 2
    np.testing.assert_array_equal(data.test.targets, [0, 0, 1, 1])
