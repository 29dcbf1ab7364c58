"""Cross-interpreter parity of the reference bundles: LiteRT, tflite-runtime and tf.lite, measured
on the same int8 inputs.

    python bench/parity.py [--setup-venv] [--write-manifests]

1. Records each bundle's held-out model inputs once, to an .npz under --cache: the test split of
   the bundle's training config (build_task_data) through the bundle's own front end, or every
   window of the official C-MAPSS test engines, quantised exactly as the agent feeds them.
2. Runs each interpreter on those int8 inputs in a process of its own: LiteRT and tf.lite from
   this environment, tflite-runtime from the virtualenv --venv (it needs numpy<2; --setup-venv
   creates it with pip). Each runs three op resolvers: AUTO (what the agent uses; applies the
   XNNPACK delegate where the build does), BUILTIN_WITHOUT_DEFAULT_DELEGATES (the same optimised
   kernels without XNNPACK) and BUILTIN_REF (reference kernels), one thread, one window at a time.
3. Prints per bundle: the interpreter pairs at their defaults (task agreement, output differences
   in int8 steps, alarm decisions with edge_agent.alarm's rules and the default AlarmConfig);
   every configuration (XNNPACK partitions, µs per invoke, held-out figure) against LiteRT's
   default, LiteRT's reference kernels and tflite-runtime's default; and the golden tolerance
   per backend derived from it. --write-manifests writes that tolerance into
   models/*/manifest.json as golden.atol_by_backend, every other byte unchanged.

An interpreter that cannot run says so in its table rows ("not available: why"). The same file
is the runner that each interpreter process executes (--runner BACKEND): that part needs only
numpy and the interpreter. Not a test: what it prints depends on the interpreter builds and CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ["vibration-fault", "vibration-anomaly", "cmapss-fd001-rul"]
BACKENDS = ["ai_edge_litert", "tflite_runtime", "tensorflow"]
LABELS = {"ai_edge_litert": "LiteRT", "tflite_runtime": "tflite-runtime", "tensorflow": "tf.lite"}
DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}
RESOLVERS = {
    "AUTO": "default",
    "BUILTIN_WITHOUT_DEFAULT_DELEGATES": "no XNNPACK",
    "BUILTIN_REF": "reference kernels",
}
DEFAULT, REFERENCE = "AUTO", "BUILTIN_REF"
GOLDEN_BY = ("ai_edge_litert", DEFAULT)  # what `edge-train train` ran when it wrote golden.output
VENV = Path("/var/tmp/edge-parity-venv")
VENV_PACKAGES = ["tflite-runtime==2.14.0", "numpy<2"]
MARGIN_STEPS = 0.01  # atol = (largest difference, at least one step, + this) x output scale


# --- runner: executed in each interpreter's own process; numpy and the interpreter only -------


def _interpreter_api(backend: str):
    """(Interpreter class, OpResolverType enum, version string) of one backend."""
    if backend == "tensorflow":
        tf = importlib.import_module("tensorflow")
        return tf.lite.Interpreter, tf.lite.experimental.OpResolverType, tf.__version__
    from importlib.metadata import version

    module = importlib.import_module(f"{backend}.interpreter")
    return module.Interpreter, module.OpResolverType, version(DISTRIBUTIONS[backend])


def run_backend(backend: str, inputs: Path, out: Path, resolvers: list[str]) -> None:
    """Run every bundle's golden input and recorded windows; write the raw int8 outputs."""
    interpreter_class, resolver_type, version = _interpreter_api(backend)
    data = np.load(inputs)
    meta = json.loads(str(data["meta"]))
    outputs, partitions, invoke_us = {}, {}, {}
    for bundle, info in meta["bundles"].items():
        model = Path(info["model"]).read_bytes()
        if hashlib.sha256(model).hexdigest() != info["model_sha256"]:
            raise SystemExit(f"{info['model']} changed since the inputs were recorded")
        windows = np.concatenate([data[f"{bundle}/golden"][None], data[f"{bundle}/q"]])
        for resolver in resolvers:
            interpreter = interpreter_class(
                model_content=model,
                num_threads=1,
                experimental_op_resolver_type=getattr(resolver_type, resolver),
            )
            interpreter.allocate_tensors()
            (source,), (sink,) = interpreter.get_input_details(), interpreter.get_output_details()
            shape = tuple(source["shape"])
            rows, spent = [], 0.0
            for window in windows:
                interpreter.set_tensor(source["index"], window.reshape(shape))
                started = time.perf_counter()
                interpreter.invoke()
                if rows:  # the first invoke also prepares the delegate: not timed
                    spent += time.perf_counter() - started
                rows.append(interpreter.get_tensor(sink["index"]).reshape(-1).copy())
            outputs[f"{bundle}|{resolver}"] = np.stack(rows)
            invoke_us[f"{bundle}|{resolver}"] = 1e6 * spent / (len(windows) - 1)
            try:  # delegate kernels appear as extra nodes named DELEGATE
                ops = interpreter._get_ops_details()
                partitions[f"{bundle}|{resolver}"] = sum(op["op_name"] == "DELEGATE" for op in ops)
            except (AttributeError, RuntimeError, ValueError):
                partitions[f"{bundle}|{resolver}"] = None
    info = {"version": version, "numpy": np.__version__, "partitions": partitions}
    info["invoke_us"] = invoke_us
    np.savez(out, meta=json.dumps(info), **outputs)


# --- recording the held-out inputs -------------------------------------------------------------


def _config(manifest):
    """The bundle's training config (verbatim in its provenance), data paths resolved."""
    import tomllib

    from training.config import CmapssData, TrainConfig

    config = TrainConfig.model_validate(tomllib.loads(manifest.provenance.config))
    if isinstance(config.dataset, CmapssData):
        directory = os.environ.get("CMAPSS_DIR") or ROOT / "training/configs" / (
            config.dataset.directory
        )
        dataset = config.dataset.model_copy(update={"directory": Path(directory).resolve()})
        config = config.model_copy(update={"dataset": dataset})
    return config


def _held_out(manifest, config, test_records: int | None, engines: int | None):
    """(raw windows, targets, sequence id per window, evaluated-window mask, description)."""
    from training.config import CmapssData
    from training.datasets import build_task_data

    dataset = config.dataset
    if isinstance(dataset, CmapssData):
        from edge_agent.frontend.windowing import last_window, sliding_windows
        from training.datasets.cmapss import load_engines

        if not (dataset.directory / f"test_{dataset.subset}.txt").is_file():
            raise FileNotFoundError(f"C-MAPSS data not found in {dataset.directory}")
        data = build_task_data(config)
        if data.fingerprint != manifest.provenance.dataset.fingerprint:
            raise ValueError(f"{dataset.directory} is not the data the bundle was trained on")
        test = load_engines(dataset.directory, dataset.subset, "test")[:engines]
        window, hop = manifest.input.window, manifest.input.hop
        chunks, targets, groups, last = [], [], [], []
        for number, engine in enumerate(test):
            if len(engine.values) >= window:
                found = sliding_windows(engine.values, window, hop)
                rul = engine.rul[window - 1 :: hop][: len(found)]  # at each window's last cycle
            else:  # shorter than a window: front-padded, as the protocol scores it
                found, rul = last_window(engine.values, window)[None], engine.rul[-1:]
            found = found.astype(np.float32)  # as the training data adapter stores them
            np.testing.assert_array_equal(found[-1], data.test.windows[number])
            chunks.append(found)
            targets.append(rul)
            groups += [number] * len(found)
            last += [False] * (len(found) - 1) + [True]
        description = (
            f"every {window}-cycle window of {len(test)} official {dataset.subset} test engines"
            f" (hop {hop}); RMSE on the last window of each"
        )
        return np.concatenate(chunks), np.concatenate(targets), groups, last, description
    full = test_records is None
    if not full:
        small = {"test_records_per_class": test_records, "records_per_class": 2}
        config = config.model_copy(update={"dataset": dataset.model_copy(update=small)})
    data = build_task_data(config)
    if full and data.fingerprint != manifest.provenance.dataset.fingerprint:
        raise ValueError("the training config no longer builds the bundle's held-out data")
    n = len(data.test.windows)
    description = f"test split of the training config, {data.test_description}"
    if not full:
        description = f"first {test_records} test record(s) per class (a subset)"
    return data.test.windows, data.test.targets, [0] * n, [True] * n, description


def record_inputs(path: Path, test_records: int | None, engines: int | None) -> dict:
    """Write every bundle's held-out int8 inputs (and float features, targets) to `path`."""
    from edge_agent.bundle import read_bundle
    from edge_agent.runtime.quantization import TensorCodec

    arrays, bundles = {}, {}
    for name in BUNDLES:
        bundle = read_bundle(ROOT / "models" / name)
        manifest = bundle.manifest
        try:
            windows, targets, groups, last, description = _held_out(
                manifest, _config(manifest), test_records, engines
            )
        except (FileNotFoundError, ValueError) as exc:
            bundles[name] = {"missing": str(exc)}
            continue
        pipeline = manifest.input.pipeline()
        features = np.stack([pipeline(window) for window in windows])  # as the agent, per window
        codec = TensorCodec(manifest.tensors.input)
        golden = np.asarray(manifest.golden.input, dtype=np.float32)
        shape = manifest.tensors.input.shape[1:]
        arrays[f"{name}/x"] = features.reshape(len(features), *shape)
        arrays[f"{name}/q"] = codec.encode(arrays[f"{name}/x"])
        arrays[f"{name}/golden"] = codec.encode(golden.reshape(shape))
        arrays[f"{name}/targets"] = np.asarray(targets, dtype=np.float64)
        arrays[f"{name}/groups"] = np.asarray(groups, dtype=np.int64)
        arrays[f"{name}/last"] = np.asarray(last, dtype=bool)
        bundles[name] = {
            "model": str(bundle.path / "model.tflite"),
            "model_sha256": manifest.model_sha256,
            "windows": len(features),
            "description": description,
        }
    meta = {"bundles": {k: v for k, v in bundles.items() if "missing" not in v}}
    meta["missing"] = {k: v["missing"] for k, v in bundles.items() if "missing" in v}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, meta=json.dumps(meta), **arrays)
    partial.replace(path)
    return meta


def inputs_path(cache: Path, test_records: int | None, engines: int | None) -> Path:
    """One file per (models, sizes, data location): recorded once, reused by later runs."""
    from edge_agent.manifest import Manifest

    key = [test_records, engines, os.environ.get("CMAPSS_DIR", "")]
    for name in BUNDLES:
        text = (ROOT / "models" / name / "manifest.json").read_text()
        key.append(Manifest.model_validate_json(text).model_sha256)
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]
    return cache / f"inputs-{digest}.npz"


# --- running the interpreters -----------------------------------------------------------------


def setup_venv(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", *VENV_PACKAGES]
    subprocess.run(pip, check=True)


def run_all(inputs: Path, cache: Path, venv: Path) -> tuple[dict, dict]:
    """({backend: outputs npz}, {backend: "not available: why"}), each backend in its process."""
    python = {"ai_edge_litert": sys.executable, "tensorflow": sys.executable}
    missing = {}
    venv_python = venv / "bin/python"
    if venv_python.exists():
        python["tflite_runtime"] = str(venv_python)
    else:
        missing["tflite_runtime"] = (
            f"not available: no virtualenv at {venv} (bench/parity.py --setup-venv creates it)"
        )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    results = {}
    for backend, executable in python.items():  # one after another: the timings stay clean
        out = cache / f"{inputs.stem}-{backend}.npz"
        out.unlink(missing_ok=True)
        command = [executable, __file__, "--runner", backend, "--inputs", str(inputs)]
        command += ["--runner-out", str(out)]
        process = subprocess.run(command, env=env, capture_output=True, text=True)
        if process.returncode != 0 or not out.exists():
            lines = [line for line in process.stderr.splitlines() if line.strip()]
            last = lines[-1:] or ["no output"]
            missing[backend] = f"not available: its runner failed ({last[0].strip()[:120]})"
        else:
            results[backend] = np.load(out)
    return results, missing


# --- comparing --------------------------------------------------------------------------------


def _count(n: int, of: int) -> str:
    return f"{n:,} of {of:,}"


class Bundle:
    """One bundle's recorded inputs and the task answers for any interpreter's raw outputs."""

    def __init__(self, name: str, inputs) -> None:
        from edge_agent.config.models import AlarmConfig
        from edge_agent.manifest import Manifest
        from edge_agent.runtime.quantization import TensorCodec

        self.name = name
        text = (ROOT / "models" / name / "manifest.json").read_text()
        self.manifest = Manifest.model_validate_json(text)
        self.task = self.manifest.task
        self.decode = TensorCodec(self.manifest.tensors.output).decode
        self.scale = self.manifest.tensors.output.scale
        self.x = inputs[f"{name}/x"]
        self.targets = inputs[f"{name}/targets"]
        self.groups = inputs[f"{name}/groups"]
        self.last = inputs[f"{name}/last"]
        self.alarm = AlarmConfig()

    def answers(self, raw: np.ndarray) -> dict:
        """Per held-out window: the agent's answer, alarm verdict and debounced alarm state."""
        from edge_agent.alarm import AlarmState, judge
        from edge_agent.postprocess import interpret

        held_out = raw[1:]  # row 0 is the golden input
        outputs = [interpret(self.manifest, x, self.decode(y)) for x, y in zip(self.x, held_out)]
        verdicts = [judge(self.task, output, self.alarm) for output in outputs]
        states, state, group = [], None, None
        for number, (abnormal, severity) in zip(self.groups, verdicts):
            if number != group:  # a new machine (C-MAPSS engine): a fresh alarm
                state, group = AlarmState(self.alarm), number
            state.update(abnormal, severity, 0.0)
            states.append((state.active, state.severity))
        key = {"classification": "label", "anomaly": "score", "rul": "rul"}[self.task]
        return {
            "value": np.array([output[key] for output in outputs]),
            "verdicts": verdicts,
            "states": states,
        }

    def metric(self, raw: np.ndarray) -> str:
        """The training report's held-out figure from these outputs (training.evaluation)."""
        from edge_agent.manifest import AnomalyOutput
        from training.evaluation import evaluate

        outputs = self.decode(raw[1:])
        spec = self.manifest.output
        anomaly = spec if isinstance(spec, AnomalyOutput) else None
        if self.task == "rul":
            outputs, targets = outputs[self.last], self.targets[self.last]
        else:
            targets = self.targets
        labels = getattr(spec, "labels", None)
        values = evaluate(
            self.task, self.x, outputs, targets, labels=labels, anomaly=anomaly
        ).values
        if self.task == "classification":
            return f"accuracy {100 * values['accuracy']:.2f} %"
        if self.task == "anomaly":
            return (
                f"detection {100 * values['detection_rate']:.2f} %, "
                f"false alarms {100 * values['false_alarm_rate']:.2f} %"
            )
        return f"RMSE {values['rmse']:.3f}"

    def agreement(self, a: dict, b: dict) -> str:
        """Task-level agreement of two interpreters' answers on the held-out windows."""
        n = len(a["value"])
        if self.task == "classification":
            return f"labels agree {_count(int(np.sum(a['value'] == b['value'])), n)}"
        if self.task == "anomaly":
            corr = np.corrcoef(a["value"], b["value"])[0, 1] if n > 1 else 1.0
            same = sum(x[0] == y[0] for x, y in zip(a["verdicts"], b["verdicts"]))
            return f"score r = {corr:.6f}; verdicts agree {_count(same, n)}"
        return f"RUL max abs diff {np.max(np.abs(a['value'] - b['value'])):.2f} cycles"


def _steps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int32) - b.astype(np.int32))


def pair_row(bundle: Bundle, a: np.ndarray, b: np.ndarray, answers: tuple) -> list[str]:
    diff = _steps(a[1:], b[1:])
    first, second = answers
    n = len(diff)
    verdicts = sum(x != y for x, y in zip(first["verdicts"], second["verdicts"]))
    states = sum(x != y for x, y in zip(first["states"], second["states"]))
    return [
        f"{n:,}",
        bundle.agreement(first, second),
        f"{int(diff.max())}",
        f"{diff.mean():.4f}",
        f"{100 * np.mean(diff > 0):.2f} %",
        f"verdicts {verdicts:,}, alarm states {states:,} of {n:,}",
    ]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def tolerance_steps(results: dict, name: str) -> dict[str, int]:
    """Largest difference (golden input and held-out windows, default resolver) between each
    backend and the interpreter that wrote golden.output, in output steps."""
    reference = results[GOLDEN_BY[0]][f"{name}|{GOLDEN_BY[1]}"]
    return {
        backend: int(_steps(found[f"{name}|{DEFAULT}"], reference).max())
        for backend, found in results.items()
    }


def atol_for(steps: int, scale: float) -> float:
    """At least one step: the arm64 build of the same LiteRT is one step off (docs/deploy.md)."""
    return (max(steps, 1) + MARGIN_STEPS) * scale


def report_bundle(name: str, inputs, meta: dict, results: dict, missing: dict) -> list[str]:
    bundle = Bundle(name, inputs)
    blocks = [f"### {name}: {meta['description']}", ""]
    answers = {
        (backend, resolver): bundle.answers(found[f"{name}|{resolver}"])
        for backend, found in results.items()
        for resolver in RESOLVERS
    }
    rows = []
    for first, second in [
        ("ai_edge_litert", "tflite_runtime"),
        ("ai_edge_litert", "tensorflow"),
        ("tflite_runtime", "tensorflow"),
    ]:
        label = f"{LABELS[first]} vs {LABELS[second]}"
        gone = [missing[b] for b in (first, second) if b in missing]
        if gone:
            rows.append([label, gone[0], *["not available"] * 5])
            continue
        a, b = results[first][f"{name}|{DEFAULT}"], results[second][f"{name}|{DEFAULT}"]
        pair = (answers[(first, DEFAULT)], answers[(second, DEFAULT)])
        rows.append([label, *pair_row(bundle, a, b, pair)])
    header = [
        f"{name}: interpreter pair (defaults)",
        "windows",
        "task agreement",
        "max diff (int8 steps)",
        "mean diff (int8 steps)",
        "output values that differ",
        "alarm decisions that differ",
    ]
    blocks += [table(header, rows), ""]

    rows = []
    bases = [
        ("ai_edge_litert", DEFAULT),
        ("ai_edge_litert", REFERENCE),
        ("tflite_runtime", DEFAULT),
    ]
    for backend in BACKENDS:
        for resolver, resolver_label in RESOLVERS.items():
            label = f"{LABELS[backend]}, {resolver_label}"
            if backend in missing:
                rows.append([label, missing[backend], *["not available"] * 5])
                continue
            raw = results[backend][f"{name}|{resolver}"]
            info = json.loads(str(results[backend]["meta"]))
            parts = info["partitions"][f"{name}|{resolver}"]
            cells = [label, "unknown" if parts is None else str(parts)]
            cells.append(f"{info['invoke_us'][f'{name}|{resolver}']:,.0f}")
            for base, base_resolver in bases:
                if base not in results:
                    cells.append(missing.get(base, "not available"))
                    continue
                diff = _steps(raw[1:], results[base][f"{name}|{base_resolver}"][1:])
                cells.append(f"{int(diff.max())} / {diff.mean():.4f}")
            cells.append(bundle.metric(raw))
            rows.append(cells)
    header = [
        f"{name}: interpreter, op resolver",
        "XNNPACK partitions",
        "µs per invoke",
        "max / mean diff vs LiteRT default (steps)",
        "vs LiteRT reference kernels",
        "vs tflite-runtime default",
        "held-out figure",
    ]
    blocks += [table(header, rows), ""]
    return blocks


def golden_table(inputs_meta: dict, results: dict, missing: dict) -> tuple[str, dict]:
    """Per bundle and backend: golden error, measured bound and the tolerance it gives."""
    from edge_agent.manifest import Manifest
    from edge_agent.runtime.quantization import dequantize

    rows, proposed = [], {}
    for name in inputs_meta["bundles"]:
        text = (ROOT / "models" / name / "manifest.json").read_text()
        manifest = Manifest.model_validate_json(text)
        golden = manifest.golden
        scale = manifest.tensors.output.scale
        steps = tolerance_steps(results, name) if GOLDEN_BY[0] in results else {}
        for backend in BACKENDS:
            if backend in missing or backend not in steps:
                why = missing.get(backend, "not available: LiteRT did not run")
                rows.append([name, LABELS[backend], why, *["not available"] * 4])
                continue
            raw = results[backend][f"{name}|{DEFAULT}"][0]
            got = dequantize(raw, manifest.tensors.output)
            error = float(np.max(np.abs(got - np.asarray(golden.output, dtype=np.float32))))
            atol = atol_for(steps[backend], scale)
            proposed.setdefault(name, {})[backend] = atol
            recorded = golden.atol_for(backend)
            rows.append(
                [
                    name,
                    LABELS[backend],
                    f"{error / scale:.0f} ({error:.4g})",
                    f"{steps[backend]}",
                    f"{atol:.6g}",
                    f"{recorded:.6g}",
                    "yes" if error <= recorded else "NO",
                ]
            )
    header = [
        "bundle",
        "backend (default resolver)",
        "golden error, steps (real units)",
        "held-out max diff vs LiteRT default, steps",
        "atol from this run",
        "atol the manifest applies",
        "golden test passes",
    ]
    return table(header, rows), proposed


def write_manifests(proposed: dict) -> None:
    """Set golden.atol_by_backend in each manifest; every other byte stays as it was."""
    for name, by_backend in proposed.items():
        path = ROOT / "models" / name / "manifest.json"
        raw = json.loads(path.read_text())
        if json.dumps(raw, indent=1) + "\n" != path.read_text():
            raise SystemExit(f"{path} is not in the trainer's layout; not editing it")
        raw["golden"]["atol_by_backend"] = {b: by_backend[b] for b in BACKENDS if b in by_backend}
        path.write_text(json.dumps(raw, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/edge-parity"))
    parser.add_argument("--venv", type=Path, default=VENV, help="tflite-runtime's virtualenv")
    parser.add_argument("--setup-venv", action="store_true", help="create --venv if missing")
    parser.add_argument(
        "--test-records", type=int, help="vibration: test records per class (default: all)"
    )
    parser.add_argument("--engines", type=int, help="C-MAPSS: first N test engines (default all)")
    parser.add_argument("--write-manifests", action="store_true")
    parser.add_argument("--runner", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--runner-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runner:
        run_backend(args.runner, args.inputs, args.runner_out, list(RESOLVERS))
        return 0

    started = time.perf_counter()
    if args.setup_venv and not (args.venv / "bin/python").exists():
        setup_venv(args.venv)
    path = inputs_path(args.cache, args.test_records, args.engines)
    if path.exists():
        meta = json.loads(str(np.load(path)["meta"]))
    else:
        meta = record_inputs(path, args.test_records, args.engines)
    inputs = np.load(path)
    results, missing = run_all(path, args.cache, args.venv)

    import platform

    versions = ", ".join(
        f"{LABELS[b]} {json.loads(str(results[b]['meta']))['version']} "
        f"(numpy {json.loads(str(results[b]['meta']))['numpy']})"
        for b in BACKENDS
        if b in results
    )
    print(f"## Cross-interpreter parity ({platform.machine()}, {os.cpu_count()} CPUs)\n")
    print(f"Interpreters: {versions}. Inputs: {path}.\n")
    for name, why in meta["missing"].items():
        print(
            table(
                [f"{name}: interpreter pair", "held-out data"], [["all", f"not available: {why}"]]
            )
        )
        print()
    for name, info in meta["bundles"].items():
        print("\n".join(report_bundle(name, inputs, info, results, missing)))
    text, proposed = golden_table(meta, results, missing)
    print("### Golden tolerance per backend\n")
    print(text)
    if args.write_manifests:
        if missing or meta["missing"] or args.test_records or args.engines:
            raise SystemExit("--write-manifests needs every interpreter on all held-out data")
        write_manifests(proposed)
        print("\nWrote golden.atol_by_backend into " + ", ".join(sorted(proposed)))
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
