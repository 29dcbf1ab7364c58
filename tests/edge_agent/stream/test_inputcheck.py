"""Per-channel input health: faults injected into recorded data are named on the right channel,
and healthy simulator recordings and the healthy parts of real recordings raise nothing."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from edge_agent.bundle import MANIFEST_FILE
from edge_agent.config.models import InputHealthConfig
from edge_agent.manifest import ChannelReference, Manifest
from edge_agent.sim.vibration import generate, random_conditions
from edge_agent.stream.inputcheck import Change, InputMonitor
from tests.conftest import REPO_ROOT

RATE = 25600
NAB = REPO_ROOT.parent / "shared" / "data" / "nab"
CMAPSS_COLUMNS = ["unit", "cycle", "o1", "o2", "o3"] + [f"s{i}" for i in range(1, 22)]


def manifest(name: str) -> Manifest:
    return Manifest.model_validate_json((REPO_ROOT / "models" / name / MANIFEST_FILE).read_text())


def monitor_for(name: str, config: InputHealthConfig | None = None) -> InputMonitor:
    spec = manifest(name).input
    assert spec.reference is not None, f"{name} carries no training reference"
    return InputMonitor(
        spec.channels, spec.reference, config or InputHealthConfig(), spec.window, spec.hop
    )


def run(monitor: InputMonitor, values: np.ndarray, window: int, hop: int) -> list[Change]:
    changes = []
    for start in range(0, len(values) - window + 1, hop):
        changes += monitor.check(values[start : start + window])
    return changes


def healthy_recording(seed: int, seconds: float = 20.0) -> np.ndarray:
    conditions = random_conditions(np.random.default_rng(seed), "healthy")
    return generate(conditions, int(seconds * RATE), seed=seed).astype(np.float64)


@pytest.mark.parametrize("bundle", ["vibration-fault", "vibration-anomaly"])
def test_healthy_simulator_recordings_raise_nothing(bundle: str) -> None:
    """Test that 12 healthy machines (20 s each, varied speed, load and noise) raise no
    condition against either vibration bundle's training reference."""
    for seed in range(100, 112):
        monitor = monitor_for(bundle)
        assert run(monitor, healthy_recording(seed), 8192, 4096) == [], f"machine seed {seed}"
        assert monitor.checked == 62  # every other window of 124: checked windows never overlap


def cmapss_engines(cmapss_dir: Path, split: str, channels: list[str]) -> list[np.ndarray]:
    data = np.loadtxt(cmapss_dir / f"{split}_FD001.txt")
    columns = [CMAPSS_COLUMNS.index(c) for c in channels]
    return [data[data[:, 0] == unit][:, columns] for unit in np.unique(data[:, 0])]


def test_cmapss_engines_raise_nothing(cmapss_dir: Path) -> None:
    """Test that the 100 C-MAPSS test engines, and the 100 training engines run to failure (a
    worn engine is still a healthy sensor), raise no condition against the RUL bundle."""
    spec = manifest("cmapss-fd001-rul").input
    for split in ("test", "train"):
        for index, engine in enumerate(cmapss_engines(cmapss_dir, split, spec.channels)):
            changes = run(monitor_for("cmapss-fd001-rul"), engine, spec.window, spec.hop)
            assert changes == [], f"{split} engine {index + 1}: {changes}"


def inject(values: np.ndarray, fault: str, channel: int, at: int, scale: float) -> np.ndarray:
    out = values.copy()
    if fault == "stuck":
        out[at:, channel] = out[at, channel]
    elif fault == "drift":
        out[at:, channel] += 3.5 * scale
    elif fault == "out_of_range":
        out[at:, channel] += 20.0 * scale
    return out


@pytest.mark.parametrize("fault", ["stuck", "drift", "out_of_range"])
def test_injected_faults_are_named_on_their_channel(fault: str) -> None:
    """Test that a stuck, drifting or offset channel raises exactly that condition on that
    channel (drift also follows an offset large enough to leave the range), after the fault."""
    reference = manifest("vibration-fault").input.reference
    assert reference is not None
    values = inject(healthy_recording(7), fault, 1, 5 * RATE, reference["ay"].std)
    changes = run(monitor_for("vibration-fault"), values, 8192, 4096)
    raised = {(c.channel, c.condition) for c in changes if c.state == "raised"}
    expected = {("ay", fault)} | ({("ay", "drift")} if fault == "out_of_range" else set())
    assert raised == expected
    assert all(c.state == "raised" for c in changes)


def test_clipping_at_the_sensors_full_scale_is_saturation() -> None:
    """Test that a sensor clipping at its configured full scale (inside the training range)
    raises `saturated`, while the same recording unclipped raises nothing."""
    limits = {"ax": (-0.03, 0.03)}
    values = healthy_recording(7)
    clipped = values.copy()
    clipped[5 * RATE :, 0] = np.clip(clipped[5 * RATE :, 0], -0.03, 0.03)
    config = InputHealthConfig(full_scale=limits)
    assert run(monitor_for("vibration-fault", config), values, 8192, 4096) == []
    changes = run(monitor_for("vibration-fault", config), clipped, 8192, 4096)
    assert [(c.channel, c.condition, c.state) for c in changes] == [("ax", "saturated", "raised")]
    assert changes[0].value > config.saturation_fraction


def test_a_condition_clears_after_the_fault_ends_and_one_bad_window_never_raises() -> None:
    """Test hysteresis: a channel stuck for 5 s raises then clears once it moves again, and a
    single stuck window (fewer than `persist_windows` checks) raises nothing."""
    values = healthy_recording(9)
    stuck = values.copy()
    stuck[5 * RATE : 10 * RATE, 2] = stuck[5 * RATE, 2]
    changes = run(monitor_for("vibration-anomaly"), stuck, 8192, 4096)
    assert [(c.channel, c.condition, c.state) for c in changes] == [
        ("az", "stuck", "raised"),
        ("az", "stuck", "cleared"),
    ]
    blip = values.copy()
    blip[8192 * 4 : 8192 * 5, 2] = 0.0  # exactly one checked window
    assert run(monitor_for("vibration-anomaly"), blip, 8192, 4096) == []


def test_a_channel_constant_in_training_is_never_stuck_or_saturated() -> None:
    """Test that a channel with no variance in training cannot be called stuck or saturated
    when it stays constant, and is out of range when it moves."""
    reference = {
        "a": ChannelReference(mean=1.0, std=0.5, min=0.0, max=2.0, window_std=0.4),
        "k": ChannelReference(mean=5.0, std=0.0, min=5.0, max=5.0, window_std=0.0),
    }
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.uniform(0, 2, 400), np.full(400, 5.0)])
    monitor = InputMonitor(["a", "k"], reference, InputHealthConfig(), 20, 20)
    assert run(monitor, values, 20, 20) == []
    values[200:, 1] = 6.0
    assert {(c.channel, c.condition) for c in run(monitor, values[200:], 20, 20)} == {
        ("k", "out_of_range")
    }


def nab_series(name: str) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    with (NAB / name).open() as handle:
        rows = list(csv.reader(handle))[1:]
    times = np.array([datetime.fromisoformat(r[0]).timestamp() for r in rows])
    labelled = json.loads((NAB / "windows.json").read_text())[name]
    spans = [
        (datetime.fromisoformat(a).timestamp(), datetime.fromisoformat(b).timestamp())
        for a, b in labelled
    ]
    return times, np.array([float(r[1]) for r in rows]), spans


def reference_from(values: np.ndarray, window: int) -> ChannelReference:
    windows = values[: len(values) // window * window].reshape(-1, window)
    return ChannelReference(
        mean=float(values.mean()),
        std=float(values.std()),
        min=float(values.min()),
        max=float(values.max()),
        window_std=float(np.median(windows.std(axis=1))),
    )


def raised_outside_labels(times, values, spans, reference, window, start) -> list[str]:
    monitor = InputMonitor(["value"], {"value": reference}, InputHealthConfig(), window, window)
    found = []
    for first in range(start, len(values) - window + 1, window):
        last = first + window - 1
        for change in monitor.check(values[first : last + 1, None]):
            inside = any(a <= times[last] and times[first] <= b for a, b in spans)
            if change.state == "raised" and not inside:
                found.append(f"{datetime.fromtimestamp(times[first])}: {change.condition}")
    return found


def test_real_machine_temperature_raises_nothing_outside_its_labelled_failures() -> None:
    """Test NAB's machine temperature, reference from the probationary first 15 % only (NAB's
    protocol), hourly windows: no condition is raised outside the labelled failure windows."""
    times, values, spans = nab_series("machine_temperature_system_failure.csv")
    calibration = int(0.15 * len(values))
    reference = reference_from(values[:calibration], 12)
    assert raised_outside_labels(times, values, spans, reference, 12, calibration) == []


def test_real_ambient_temperature_raises_nothing_outside_its_labelled_failures() -> None:
    """Test NAB's ambient temperature with a reference from a year of its healthy (unlabelled)
    hours, as a model trained on that year would carry: nothing raised outside the labels.
    (Its 15 % probationary period is one summer; against that, autumn and winter readings are
    out of the reference range, which docs/mqtt.md explains.)"""
    times, values, spans = nab_series("ambient_temperature_system_failure.csv")
    healthy = ~np.array([any(a <= t <= b for a, b in spans) for t in times])
    reference = reference_from(values[healthy], 6)
    assert raised_outside_labels(times, values, spans, reference, 6, 0) == []


def test_due_names_the_windows_check_would_check() -> None:
    """Test that `due` over batches of any size picks exactly the windows that `check`, called
    on every window, checks (one in ceil(window / hop), from the first)."""
    rng = np.random.default_rng(3)
    for window, hop in ((40, 1), (8192, 4096), (10, 3), (5, 5)):
        spec = manifest("cmapss-fd001-rul").input
        one = InputMonitor(spec.channels, spec.reference, InputHealthConfig(), window, hop)
        many = InputMonitor(spec.channels, spec.reference, InputHealthConfig(), window, hop)
        values = np.zeros((window, len(spec.channels)))
        checked, named, offset = [], [], 0
        for _ in range(60):
            n = int(rng.integers(1, 2 * -(-window // hop) + 3))
            for i in range(n):
                before = one.checked
                one.check(values)
                if one.checked > before:
                    checked.append(offset + i)
            named += [offset + i for i in many.due(n)]
            offset += n
        assert named == checked and checked[:2] == [0, -(-window // hop)]


def test_checking_windows_together_gives_what_checking_one_at_a_time_gives() -> None:
    """Test that check_many on groups of windows reports the same changes, figures bit for
    bit, and states as check() window by window, on windows with every kind of fault."""
    spec = manifest("cmapss-fd001-rul").input
    rng = np.random.default_rng(5)
    mean, std = np.asarray(spec.features[0].mean), np.asarray(spec.features[0].std)
    windows = []
    for _ in range(300):
        values = mean + std * rng.normal(size=(spec.window, len(spec.channels)))
        fault = rng.choice(["none", "stuck", "range", "clip", "drift"])
        channel = int(rng.integers(len(spec.channels)))
        if fault == "stuck":
            values[:, channel] = mean[channel]
        elif fault == "range":
            values[:, channel] += 50 * std[channel]
        elif fault == "clip":
            top = spec.reference[spec.channels[channel]].max
            values[:, channel] = np.minimum(values[:, channel] + 2 * std[channel], top)
        elif fault == "drift":
            values += 4 * std
        windows.append(values)
    config = InputHealthConfig(persist_windows=2, drift_horizon_windows=3)
    one = InputMonitor(spec.channels, spec.reference, config, spec.window, spec.window)
    expected = []
    for values in windows:
        changes = one.check(values)
        expected.append((repr(changes), one.active() if changes or one.checked == 1 else None))
    together = InputMonitor(spec.channels, spec.reference, config, spec.window, spec.window)
    got, first = [], 0
    while first < len(windows):
        group = windows[first : first + int(rng.integers(1, 30))]
        assert together.due(len(group)) == range(len(group))
        got += [(repr(c.changes), c.active) for c in together.check_many(group)]
        first += len(group)
    assert got == expected
    assert sum(changes != "[]" for changes, _ in expected) >= 20  # faults raised and cleared
