"""Raw model outputs of every reference bundle over a fixed replay, and a comparison of two runs.

Used by bench/aarch64/run.sh to show that an arm64 device computes what x86-64 computes, but
runs anywhere the device extra is installed (numpy + edge_agent + an interpreter; no TensorFlow):

    python outputs.py --record DIR [--windows 50] [--seed 0] [--cmapss PATH]
    python outputs.py --replay DIR --out RUN.json
    python outputs.py --compare A.json B.json

--record writes the input recordings once (NPZ files plus DIR/recordings.json): for a 3-axis
vibration bundle, seeded streams of the project's simulator, one per machine condition; for a
C-MAPSS bundle, the last cycles of test engines from test_FD001.txt when --cmapss names it,
otherwise (and for any other bundle) seeded random rows inside the range of the bundle's
normalisation. Recording once and replaying the same files on both machines keeps the signal
bit-identical, so any difference comes from the device side: the feature front end and the
interpreter.

--replay loads each bundle with the project's own loader (hash, tensors, golden test), replays
its recordings through the agent's ReplaySource and ModelPipeline (windower, feature front end,
int8 interpreter) and writes every window's int8 model input and the raw int8 and float model
output, with the platform and library versions.

--compare prints a markdown table per bundle: the largest output difference in quantized steps
and in real units, against the bundle's golden tolerance; it exits 1 if any bundle is outside it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.bundle import read_bundle, read_manifest
from edge_agent.config.models import AlarmConfig
from edge_agent.config.sources import ReplaySourceConfig
from edge_agent.errors import EdgeError
from edge_agent.frontend.steps import Standardize
from edge_agent.manifest import Manifest
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime.model import ModelRunner
from edge_agent.sim.vibration import CHANNELS, FAULTS, VibrationSimulator, random_conditions
from edge_agent.sources.replay import ReplaySource

REPO = Path(__file__).resolve().parents[2]
INDEX = "recordings.json"
CMAPSS_COLUMNS = (
    "unit",
    "cycle",
    *(f"setting{i}" for i in (1, 2, 3)),
    *(f"s{i}" for i in range(1, 22)),
)
WINDOWS_PER_ENGINE = 5  # C-MAPSS: windows taken from the end of each test engine
RANDOM_SPREAD = 2.5  # random rows: mean +- this many standard deviations, uniform


class ProofError(Exception):
    """One readable line saying which step failed."""


def bundle_dirs(models: Path) -> list[Path]:
    found = sorted(p for p in models.iterdir() if (p / "manifest.json").is_file())
    if not found:
        raise ProofError(f"no bundles (*/manifest.json) under {models}")
    return found


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split(total: int, parts: int) -> list[int]:
    """`total` windows over `parts` segments, as evenly as possible, none empty."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# ---------------------------------------------------------------------------------- recording


def vibration_segments(manifest: Manifest, windows: int, seed: int) -> list[dict[str, Any]]:
    """One simulator stream per machine condition (healthy and each fault), seeded."""
    spec = manifest.input
    rng = np.random.default_rng(seed)
    segments = []
    for k, (fault, count) in enumerate(zip(FAULTS, split(windows, len(FAULTS)))):
        conditions = random_conditions(rng, fault)
        simulator = VibrationSimulator(conditions, spec.sample_rate_hz, seed=seed * 1000 + k)
        values = simulator.next_block(spec.window + spec.hop * (count - 1))
        segments.append(
            {
                "what": f"simulator {fault}, shaft {conditions.shaft_hz:.1f} Hz",
                "windows": count,
                "columns": dict(zip(CHANNELS, values.T)),
            }
        )
    return segments


def read_cmapss(path: Path) -> dict[int, np.ndarray]:
    """Rows of a C-MAPSS text file by engine unit, columns as in CMAPSS_COLUMNS."""
    try:
        table = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise ProofError(f"{path}: not a readable C-MAPSS file ({exc})") from None
    if table.shape[1] != len(CMAPSS_COLUMNS):
        raise ProofError(f"{path}: {table.shape[1]} columns, C-MAPSS has {len(CMAPSS_COLUMNS)}")
    return {int(u): table[table[:, 0] == u] for u in np.unique(table[:, 0])}


def cmapss_segments(manifest: Manifest, windows: int, path: Path) -> list[dict[str, Any]]:
    """The last cycles of the first test engines long enough to give their share of windows."""
    spec = manifest.input
    index = [CMAPSS_COLUMNS.index(c) for c in spec.channels]
    engines = read_cmapss(path)
    segments = []
    for count in split(windows, -(-windows // WINDOWS_PER_ENGINE)):
        rows = spec.window + spec.hop * (count - 1)
        unit = next((u for u in engines if len(engines[u]) >= rows), None)
        if unit is None:
            raise ProofError(f"{path}: not enough test engines with {rows} cycles")
        table = engines.pop(unit)[-rows:]
        segments.append(
            {
                "what": f"{path.name} engine {unit}, last {rows} cycles",
                "windows": count,
                "columns": {c: table[:, i] for c, i in zip(spec.channels, index)},
            }
        )
    return segments


def random_segments(manifest: Manifest, windows: int, seed: int) -> list[dict[str, Any]]:
    """Seeded uniform rows within +-RANDOM_SPREAD standard deviations of the bundle's own
    per-channel normalisation (its first step, if that is a per-channel standardize)."""
    spec = manifest.input
    n_channels = len(spec.channels)
    mean, std = np.zeros(n_channels), np.ones(n_channels)
    first = spec.features[0] if spec.features else None
    if isinstance(first, Standardize) and np.shape(first.mean) == (n_channels,):
        mean, std = np.asarray(first.mean), np.asarray(first.std)
    rows = spec.window + spec.hop * (windows - 1)
    rng = np.random.default_rng(seed)
    values = mean + std * rng.uniform(-RANDOM_SPREAD, RANDOM_SPREAD, (rows, n_channels))
    return [
        {
            "what": f"seeded random rows (seed {seed}), mean +- {RANDOM_SPREAD} std",
            "windows": windows,
            "columns": dict(zip(spec.channels, values.T)),
        }
    ]


def record(out: Path, models: Path, windows: int, seed: int, cmapss: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"windows": windows, "seed": seed, "bundles": {}}
    for bundle in bundle_dirs(models):
        manifest = read_manifest(bundle / "manifest.json")
        spec = manifest.input
        if tuple(spec.channels) == CHANNELS and spec.sample_rate_hz:
            segments = vibration_segments(manifest, windows, seed)
        elif set(spec.channels) <= set(CMAPSS_COLUMNS[5:]) and cmapss and cmapss.is_file():
            segments = cmapss_segments(manifest, windows, cmapss)
        else:
            segments = random_segments(manifest, windows, seed)
        entries = []
        for k, segment in enumerate(segments):
            path = out / f"{bundle.name}-{k:02d}.npz"
            np.savez(path, **segment.pop("columns"))
            entries.append({"file": path.name, "sha256": sha256_file(path), **segment})
        index["bundles"][bundle.name] = entries
        print(f"recorded {bundle.name}: {len(entries)} segment(s), {entries[0]['what']}, ...")
    (out / INDEX).write_text(json.dumps(index, indent=1) + "\n")


# ------------------------------------------------------------------------------------- replay


class CapturingRunner(ModelRunner):
    """The project's runner, keeping every model input and output that goes through it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def predict(self, features: np.ndarray) -> np.ndarray:
        output = super().predict(features)
        self.seen.append((np.array(features, dtype=np.float32), np.array(output)))
        return output

    def predict_many(self, features: np.ndarray) -> np.ndarray:
        """Batched, as the pipeline runs it; still one entry per example."""
        before = len(self.seen)
        outputs = super().predict_many(features)
        del self.seen[before:]  # a fallback through predict() must not record twice
        for row, output in zip(features, outputs):
            self.seen.append((np.array(row, dtype=np.float32), np.array(output)))
        return outputs


def steps(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Tensor integers back from dequantized floats: exact, as each float is (q - zp) x scale."""
    return (np.rint(np.asarray(values, dtype=np.float64) / scale) + zero_point).astype(np.int64)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "machine": platform.machine()}
    if os.environ.get("QEMU_CPU"):  # set by run.sh: the CPU that qemu emulates
        found["qemu_cpu"] = os.environ["QEMU_CPU"]
    for name in ("numpy", "ai-edge-litert", "tflite-runtime", "edge-pdm"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def replay_bundle(bundle: Path, recordings: Path, entries: list[dict[str, Any]]) -> dict:
    runner = CapturingRunner(read_bundle(bundle))
    golden_error = runner.smoke_test()
    runner.seen.clear()  # the golden example is not part of the replay
    manifest = runner.manifest
    for entry in entries:
        path = recordings / entry["file"]
        if sha256_file(path) != entry["sha256"]:
            raise ProofError(f"{path}: sha256 differs from {INDEX} (recording changed)")
        source = ReplaySource(
            ReplaySourceConfig(
                kind="replay",
                id="recording",
                path=path,
                channels=list(manifest.input.channels),
                sample_rate_hz=manifest.input.sample_rate_hz,
            )
        )
        pipeline = ModelPipeline(
            "aarch64-proof", manifest.name, runner, AlarmConfig(enabled=False), []
        )
        before = len(runner.seen)
        source.run(pipeline.push, threading.Event())
        if len(runner.seen) - before != entry["windows"]:
            raise ProofError(
                f"{path}: replay gave {len(runner.seen) - before} windows, "
                f"expected {entry['windows']}"
            )
    tin, tout = manifest.tensors.input, manifest.tensors.output
    return {
        "backend": runner.backend,
        "golden_error": golden_error,
        "golden_atol": manifest.golden.atol,
        "output_scale": tout.scale,
        "output_zero_point": tout.zero_point,
        "recordings": [entry["sha256"] for entry in entries],
        "input_int8": [
            steps(f, tin.scale, tin.zero_point).ravel().tolist() for f, _ in runner.seen
        ],
        "features": [f.ravel().tolist() for f, _ in runner.seen],
        "output_int8": [steps(o, tout.scale, tout.zero_point).tolist() for _, o in runner.seen],
        "output": [o.ravel().tolist() for _, o in runner.seen],
    }


def replay(recordings: Path, models: Path, out: Path) -> None:
    try:
        index = json.loads((recordings / INDEX).read_text())
    except (OSError, ValueError) as exc:
        raise ProofError(f"{recordings / INDEX}: cannot read ({exc}); run --record first") from None
    result: dict[str, Any] = {"versions": versions(), "bundles": {}}
    for bundle in bundle_dirs(models):
        entries = index["bundles"].get(bundle.name)
        if entries is None:
            raise ProofError(f"{bundle.name}: no recording in {recordings} (run --record again)")
        result["bundles"][bundle.name] = done = replay_bundle(bundle, recordings, entries)
        print(
            f"replayed {bundle.name}: {len(done['output'])} windows on {done['backend']} "
            f"({result['versions']['machine']}), golden error {done['golden_error']:.3g}"
        )
    out.write_text(json.dumps(result) + "\n")


# ------------------------------------------------------------------------------------ compare


def describe(run: dict[str, Any]) -> str:
    v = run["versions"]
    libs = ", ".join(f"{k} {v[k]}" for k in ("numpy", "ai-edge-litert", "tflite-runtime") if k in v)
    cpu = f" (qemu -cpu {v['qemu_cpu']})" if "qemu_cpu" in v else ""
    return f"{v['machine']}{cpu}: Python {v['python']}, {libs}"


def compare(path_a: Path, path_b: Path) -> int:
    runs = []
    for path in (path_a, path_b):
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise ProofError(f"{path}: cannot read a replay result ({exc})") from None
    a, b = runs
    if set(a["bundles"]) != set(b["bundles"]):
        raise ProofError(
            f"the runs cover different bundles: {sorted(a['bundles'])} vs {sorted(b['bundles'])}"
        )
    print(f"A = {describe(a)}")
    print(f"B = {describe(b)}")
    print()
    print(
        "| bundle | windows | max abs output difference (int8 steps) | (real units) "
        "| golden atol | within tolerance | int8 output elements that differ "
        "| int8 input elements that differ |"
    )
    print("|---|---|---|---|---|---|---|---|")
    failed = 0
    for name in sorted(a["bundles"]):
        ra, rb = a["bundles"][name], b["bundles"][name]
        if ra["recordings"] != rb["recordings"]:
            raise ProofError(f"{name}: the two runs replayed different recordings")
        if len(ra["output"]) != len(rb["output"]):
            raise ProofError(f"{name}: {len(ra['output'])} vs {len(rb['output'])} windows")
        steps_a, steps_b = np.array(ra["output_int8"]), np.array(rb["output_int8"])
        step_diff = np.abs(steps_a - steps_b).max()
        real_diff = np.abs(np.array(ra["output"]) - np.array(rb["output"])).max()
        inputs_a, inputs_b = np.array(ra["input_int8"]), np.array(rb["input_int8"])
        outputs_differ = int(np.count_nonzero(steps_a != steps_b))
        inputs_differ = int(np.count_nonzero(inputs_a != inputs_b))
        ok = real_diff <= ra["golden_atol"]
        failed += not ok
        print(
            f"| {name} | {len(ra['output'])} | {step_diff} | {real_diff:.6g} "
            f"| {ra['golden_atol']:.6g} | {'yes' if ok else 'no'} "
            f"| {outputs_differ:,} of {steps_a.size:,} | {inputs_differ:,} of {inputs_a.size:,} |"
        )
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------- cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", type=Path, metavar="DIR", help="write the input recordings")
    mode.add_argument("--replay", type=Path, metavar="DIR", help="replay recordings from DIR")
    mode.add_argument("--compare", type=Path, nargs=2, metavar=("A.json", "B.json"))
    parser.add_argument("--out", type=Path, help="--replay: the JSON file to write")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--windows", type=int, default=50, help="--record: windows per bundle")
    parser.add_argument("--seed", type=int, default=0, help="--record: seed of every stream")
    parser.add_argument("--cmapss", type=Path, help="--record: C-MAPSS test_FD001.txt, if any")
    args = parser.parse_args(argv)
    try:
        if args.record:
            if args.windows < 1:
                parser.error("--windows must be >= 1")
            record(args.record, args.models, args.windows, args.seed, args.cmapss)
        elif args.replay:
            if args.out is None:
                parser.error("--replay needs --out")
            replay(args.replay, args.models, args.out)
        else:
            return compare(*args.compare)
    except (ProofError, EdgeError, OSError) as exc:
        print(f"outputs.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
