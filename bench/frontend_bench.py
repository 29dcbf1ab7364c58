"""The vibration front end per 3 x 8192 window: each bundle alone, both on one sensor, and one
numpy rfft of the window for scale.

    python bench/frontend_bench.py [--repeats 7] [--windows 200]

Times are CPU time of the timing thread (time.thread_time), so that other processes on a busy
machine do not count; every repeat runs all rows back to back over the same windows. Prints a
markdown table (median and fastest repeat) and the performance issue's target: both models on
one sensor in at most 1.0 ms per window, i.e. 16 three-axis 25.6 kHz sensors in at most 10 % of
one core. `frontend_table` is what bench/agent_bench.py prints. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_agent.bundle import MANIFEST_FILE, read_manifest
from edge_agent.frontend.spectra import SpectraCache
from edge_agent.frontend.windowing import sliding_windows
from edge_agent.manifest import InputSpec
from edge_agent.sim.vibration import MachineConditions, generate

ROOT = Path(__file__).resolve().parents[1]
FAULT, ANOMALY = "vibration-fault", "vibration-anomaly"
TARGET_MS = 1.0  # both models on one sensor, per window (issue 12, target 1)
SENSORS = 16  # ... so that this many sensors fit in TARGET_SHARE of one core
TARGET_SHARE = 0.10


def _spec(name: str, before: bool = False) -> InputSpec:
    """The bundle's front end; `before`: with the steps' defaults, what bundles made before
    this front end computed (full-length Hilbert envelope, symmetric Hann taper)."""
    spec = read_manifest(ROOT / "models" / name / MANIFEST_FILE).input
    if not before:
        return spec
    raw = spec.model_dump(mode="json")
    for step in raw["features"]:
        for branch in step.get("branches", []):
            for inner in branch:
                inner.pop("method", None)
                inner.pop("taper", None)
    return InputSpec.model_validate(raw)


def _windows(spec: InputSpec, count: int) -> np.ndarray:
    rate = spec.sample_rate_hz or 0.0
    n = spec.window + spec.hop * (count - 1)
    recording = generate(MachineConditions(fault="bearing_outer"), n, rate, seed=1)
    return np.ascontiguousarray(sliding_windows(recording, spec.window, spec.hop))


def _rows(windows: np.ndarray) -> dict[str, Callable[[int], object]]:
    """What each table row runs for window i. Each model reads its own copy of the window, as
    each pipeline's windower cuts its own."""
    copy = windows.copy()
    as_built = {name: _spec(name) for name in (FAULT, ANOMALY)}
    before = {name: _spec(name, before=True) for name in (FAULT, ANOMALY)}

    def pair(specs: dict[str, InputSpec], shared: bool) -> Callable[[int], object]:
        cache = SpectraCache() if shared else None
        fault, anomaly = (specs[name].pipeline(cache) for name in (FAULT, ANOMALY))
        return lambda i: (fault(windows[i]), anomaly(copy[i]))

    alone = {name: as_built[name].pipeline() for name in (FAULT, ANOMALY)}
    rfft_input = windows.astype(np.float64)
    return {
        "one numpy rfft of the window (float64)": lambda i: np.fft.rfft(rfft_input[i], axis=0),
        f"{FAULT} alone": lambda i: alone[FAULT](windows[i]),
        f"{ANOMALY} alone": lambda i: alone[ANOMALY](windows[i]),
        "both, each computing its own spectra": pair(as_built, shared=False),
        "both, sharing the source's spectra (the agent)": pair(as_built, shared=True),
        "both, shared, steps of bundles 1.0.0 (Hilbert envelope, symmetric Hann)": pair(
            before, shared=True
        ),
    }


def measure(repeats: int, count: int) -> dict[str, list[float]]:
    """CPU ms per window of every row, one list entry per repeat."""
    windows = _windows(_spec(FAULT), count)
    rows = _rows(windows)
    for run in rows.values():  # warm up: FFT plans, cached tapers and band edges
        run(0)
    times: dict[str, list[float]] = {label: [] for label in rows}
    for _ in range(repeats):
        for label, run in rows.items():
            started = time.thread_time()
            for i in range(len(windows)):
                run(i)
            times[label].append((time.thread_time() - started) * 1000.0 / len(windows))
    return times


def frontend_table(repeats: int, count: int = 200) -> str:
    """The front-end table and the target verdict, as markdown."""
    times = measure(repeats, count)
    spec = _spec(FAULT)
    windows_per_s = (spec.sample_rate_hz or 0.0) / spec.hop
    labels = list(times)
    rfft = times[labels[0]]
    lines = [
        f"| front end, 3 x {spec.window} window at {spec.sample_rate_hz:g} Hz "
        "| CPU ms/window (median) | fastest | x one rfft |",
        "|---|---|---|---|",
    ]
    for label in labels:
        ratio = statistics.median(t / r for t, r in zip(times[label], rfft, strict=True))
        lines.append(
            f"| {label} | {statistics.median(times[label]):.3f} | {min(times[label]):.3f} "
            f"| {ratio:.1f} |"
        )
    shared = statistics.median(times["both, sharing the source's spectra (the agent)"])
    share = SENSORS * windows_per_s * shared / 1000.0
    verdict = "met" if shared <= TARGET_MS else "**missed**"
    lines += [
        "",
        f"Both models on one sensor, shared: {shared:.3f} ms per window, "
        f"{windows_per_s:g} windows/s per sensor: {1000.0 / (windows_per_s * shared):.0f} "
        f"sensors per core; {SENSORS} sensors use {share:.1%} of one core. "
        f"Target <= {TARGET_MS} ms per window (<= {TARGET_SHARE:.0%} of a core for {SENSORS}): "
        f"{verdict}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--windows", type=int, default=200, help="windows per repeat and row")
    args = parser.parse_args()
    print(frontend_table(args.repeats, args.windows))


if __name__ == "__main__":
    main()
