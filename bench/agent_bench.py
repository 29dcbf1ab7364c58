"""Agent throughput, ingest, memory and start-up, measured side by side in one run.

    python bench/agent_bench.py [--repeats 5]

Prints a markdown table (medians of --repeats runs). Not a test: numbers depend on the machine.
The size flags (--windows, --invokes, --ingest-seconds, --settle-s) exist so that the test suite
can run the whole script quickly; their defaults are the measured configuration.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from frontend_bench import frontend_table  # bench/ is the script's own directory

from edge_agent.config.models import AlarmConfig
from edge_agent.frontend.windowing import sliding_windows
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime import load_model
from edge_agent.runtime.quantization import quantize
from edge_agent.sim.vibration import CHANNELS, MachineConditions, generate
from edge_agent.sinks.jsonl import JsonlSink
from edge_agent.sources.payloads import encode_binary, parse
from edge_agent.stream.blocks import SampleBlock
from edge_agent.stream.windower import Windower

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BUNDLES = ["vibration-fault", "vibration-anomaly", "cmapss-fd001-rul"]
RATIO_TARGET = 0.90  # agent end-to-end against bare features+invoke (issue 12, target 2)
RATE_BUNDLE, RATE_TARGET = "cmapss-fd001-rul", 60_000  # results/s on a replay, JSON lines


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def recording_for(runner, n_windows: int) -> np.ndarray:
    spec = runner.manifest.input
    n = spec.window + spec.hop * (n_windows - 1)
    if spec.sample_rate_hz:
        return generate(MachineConditions(fault="bearing_outer"), n, spec.sample_rate_hz, seed=1)
    rng = np.random.default_rng(0)
    mean = np.asarray(spec.features[0].mean)
    std = np.asarray(spec.features[0].std)
    return (mean + std * rng.normal(size=(n, len(spec.channels)))).astype(np.float64)


def median_rate(fn, count: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def rates(fn, count: int) -> tuple[float, float]:
    """One run of `fn` doing `count` items: (items per second of wall time, items per CPU
    second of this process). On a shared machine the CPU figure is the steadier one."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def bench_model(
    name: str, repeats: int, windows: int | None = None, invokes: int = 2000
) -> dict[str, float]:
    runner = load_model(ROOT / "models" / name)
    spec = runner.manifest.input
    n_windows = windows or (300 if spec.sample_rate_hz else 5000)
    recording = recording_for(runner, n_windows)
    windows = sliding_windows(recording, spec.window, spec.hop)
    pipeline = spec.pipeline()
    features = pipeline.batch(windows[:50])
    runner.predict(features[0])  # the interpreter back at batch 1 for the raw figure
    interpreter = runner._interpreter  # the bare interpreter: the physical limit
    q = quantize(features[0].reshape(runner.input_spec.shape), runner.input_spec)
    index = runner._input_index

    def raw_invoke() -> None:
        for _ in range(invokes):
            interpreter.set_tensor(index, q)
            interpreter.invoke()

    def bare() -> None:
        for window in windows:
            runner.predict(pipeline(window))

    def bare_batched() -> None:
        # The agent's own primitives at their fastest: features and inference per batch.
        for first in range(0, len(windows), runner.batch_size):
            runner.predict_many(pipeline.batch(windows[first : first + runner.batch_size]))

    def end_to_end() -> None:
        sink = JsonlSink(os.devnull)
        agent_pipeline = ModelPipeline("bench", name, runner, AlarmConfig(), [sink])
        channels = tuple(CHANNELS) if spec.sample_rate_hz else tuple(spec.channels)
        step = 4096
        for a in range(0, len(recording), step):
            chunk = recording[a : a + step]
            t0 = 1.7e9 + a / (spec.sample_rate_hz or 1.0)
            if spec.sample_rate_hz:
                block = SampleBlock("s", channels, chunk, t0, rate_hz=spec.sample_rate_hz)
            else:
                times = t0 + np.arange(len(chunk), dtype=np.float64)
                block = SampleBlock("s", channels, chunk, t0, timestamps=times)
            agent_pipeline.push(block, time.perf_counter())  # stamped on arrival, as the agent
            sink.flush()
        sink.close()

    invoke_rate = median_rate(raw_invoke, invokes, repeats)
    # Bare and end-to-end alternate, so machine noise hits both alike; the ratio is per pair.
    pairs = [(rates(bare, len(windows)), rates(end_to_end, len(windows))) for _ in range(repeats)]
    batched = median_rate(bare_batched, len(windows), repeats)
    return {
        "invoke": invoke_rate,
        "batched": batched,
        "batched_ratio": statistics.median(e for _, (e, _) in pairs) / batched,
        "bare": statistics.median(b for (b, _), _ in pairs),
        "e2e": statistics.median(e for _, (e, _) in pairs),
        "ratio": statistics.median(e / b for (b, _), (e, _) in pairs),
        "cpu_ratio": statistics.median(e / b for (_, b), (_, e) in pairs),
    }


def bench_ingest(repeats: int, seconds: float = 10.0) -> dict[str, float]:
    """Samples/s through payload parsing and the window buffer (25.6 kHz, 3 axes, no inference)."""
    rate = 25600.0
    data = generate(MachineConditions(), int(rate * seconds), rate, seed=2).astype(np.float64)
    blocks = [
        SampleBlock("m", CHANNELS, data[a : a + 2560], 1.7e9 + a / rate, rate_hz=rate, seq=i)
        for i, a in enumerate(range(0, len(data), 2560))
    ]
    binary = [encode_binary(b) for b in blocks]
    json_blocks = [
        orjson.dumps(
            {
                "ts": b.t0,
                "rate_hz": rate,
                "seq": b.seq,
                "values": {c: b.values[:, i].tolist() for i, c in enumerate(CHANNELS)},
            }
        )
        for b in blocks
    ]

    def windower_only() -> None:
        windower = Windower(list(CHANNELS), 8192, 4096, rate)
        for block in blocks:
            windower.push(block)

    def binary_path() -> None:
        windower = Windower(list(CHANNELS), 8192, 4096, rate)
        for payload in binary:
            windower.push(parse("m", payload, now=2e9))

    def json_path() -> None:
        windower = Windower(list(CHANNELS), 8192, 4096, rate)
        for payload in json_blocks:
            windower.push(parse("m", payload, now=2e9))

    return {
        "window buffer only": median_rate(windower_only, len(data), repeats),
        "binary block payload + window buffer": median_rate(binary_path, len(data), repeats),
        "JSON block payload + window buffer": median_rate(json_path, len(data), repeats),
    }


def _process_config(folder: Path) -> Path:
    rate = 25600.0
    vib = generate(MachineConditions(), int(rate * 4), rate, seed=3)
    ts = 1.7e9 + np.arange(len(vib)) / rate
    np.savez(folder / "motor.npz", ts=ts, ax=vib[:, 0], ay=vib[:, 1], az=vib[:, 2])
    manifest = load_model(ROOT / "models/cmapss-fd001-rul").manifest
    rows = np.random.default_rng(0).normal(size=(200, 14)) * np.asarray(
        manifest.input.features[0].std
    ) + np.asarray(manifest.input.features[0].mean)
    columns = {name: rows[:, i] for i, name in enumerate(manifest.input.channels)}
    np.savez(folder / "engine.npz", ts=1.7e9 + np.arange(200.0), **columns)
    models = "\n".join(
        f'[[models]]\nbundle = "{ROOT / "models" / m}"\n'
        f'source = "{"engine" if "cmapss" in m else "motor"}"'
        for m in BUNDLES
    )
    config = folder / "agent.toml"
    config.write_text(f"""device_id = "bench"
[[sources]]
kind = "replay"
id = "motor"
path = "{folder / "motor.npz"}"
loop = true
speed = 1.0
[[sources]]
kind = "replay"
id = "engine"
path = "{folder / "engine.npz"}"
loop = true
speed = 1.0
{models}
[[sinks]]
kind = "jsonl"
path = "{folder / "out.jsonl"}"
""")
    return config


PI4_FACTOR = (4.0, 6.0)  # a Pi 4 core against one core of this machine (issue 12's estimate)
SCALE_MODELS = {1: ["vibration-fault"], 2: ["vibration-fault", "vibration-anomaly"]}


def bench_scale(sources: list[int], seconds: float) -> list[dict[str, float]]:
    """Each row in a process of its own, so that its RSS is its own (see scale_row)."""
    rows = []
    for per_sensor in SCALE_MODELS:
        for n in sources:
            code = (
                f"import json, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
                "import agent_bench; "
                f"print(json.dumps(agent_bench.scale_row({n}, {per_sensor}, {seconds})))"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
            rows.append(orjson.loads(out.splitlines()[-1]))
    return rows


def scale_row(n: int, per_sensor: int, seconds: float) -> dict[str, float]:
    """N simulated three-axis 25.6 kHz sensors with `per_sensor` models each, served as the
    agent serves them: one pipeline (and interpreter) per model binding, a block of 0.1 s from
    every sensor in turn. CPU per second of data; the time one round of blocks takes (what the
    last sensor of a round waits: its latency when every sensor's block arrives at once); the
    RSS the pipelines add, after one round so that buffers and spectra are allocated."""
    rate, block = 25600.0, 2560
    data = generate(MachineConditions(fault="bearing_outer"), int(rate * seconds), rate, seed=4)
    data = data.astype(np.float64)
    load_model(ROOT / "models" / SCALE_MODELS[1][0])  # the interpreter library, loaded once
    before = _rss_mb(os.getpid())
    # one runner per bundle, shared by every sensor's binding, as build_pipelines does
    runners = {name: load_model(ROOT / "models" / name) for name in SCALE_MODELS[per_sensor]}
    pipelines = [
        [
            ModelPipeline("bench", f"{name}-{i}", runner, AlarmConfig(), [JsonlSink(os.devnull)])
            for name, runner in runners.items()
        ]
        for i in range(n)
    ]
    rounds, results = [], 0
    cpu = time.process_time()
    for a in range(0, len(data) - block + 1, block):
        started = time.perf_counter()
        for i, sensor in enumerate(pipelines):
            chunk = SampleBlock(
                f"s{i}", CHANNELS, data[a : a + block], 1.7e9 + a / rate, rate_hz=rate
            )
            for pipeline in sensor:
                results += pipeline.push(chunk, started)
                pipeline.sinks[0].flush()
        rounds.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu
    return {
        "sources": n,
        "models": per_sensor,
        "results_s": results / cpu,
        "cores": cpu / (len(rounds) * block / rate),
        "round_p50_ms": 1000 * statistics.median(rounds),
        "round_max_ms": 1000 * max(rounds),
        "rss_mb": _rss_mb(os.getpid()) - before,
    }


def print_scale(rows: list[dict[str, float]]) -> None:
    low, high = PI4_FACTOR
    print()
    print(
        "| sensors x models (3-axis 25.6 kHz) | results/s per core | cores at real time | "
        "round of blocks p50 / max ms | RSS added MB | Pi 4 cores, projected |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['sources']} x {r['models']} | {r['results_s']:,.0f} | {r['cores']:.3f} | "
            f"{r['round_p50_ms']:.1f} / {r['round_max_ms']:.1f} | {r['rss_mb']:.1f} | "
            f"{r['cores'] * low:.2f}-{r['cores'] * high:.2f} |"
        )


MEMORY_TARGET_MB = 50.0  # RSS serving the three bundles, MQTT and signatures on (target 5)
# Each optional part switched on or off against the device configuration (MQTT, signed).
MEMORY_VARIANTS = {
    "device config: 3 bundles, MQTT sink, signatures verified, Prometheus off": {},
    "without the MQTT sink (JSON lines only)": {"mqtt": False},
    "without signature verification": {"signed": False},
    "with the Prometheus endpoint": {"prometheus": True},
}


def _memory_config(
    folder: Path, port: int, mqtt: bool = True, signed: bool = True, prometheus: bool = False
) -> Path:
    """The process benchmark's config with the device's parts switched on or off: bundles
    copied and signed with a key made here, an MQTT sink to a local broker, Prometheus."""
    from edge_agent.signing import generate, sign

    config = _process_config(folder)
    text = config.read_text()
    if signed:
        private, public, _ = generate(folder / "keys", "bench")
        for name in BUNDLES:
            copy = folder / "models" / name
            shutil.copytree(ROOT / "models" / name, copy)
            sign(copy, private)
            text = text.replace(f'"{ROOT / "models" / name}"', f'"{copy}"')
        text = text.replace(
            'device_id = "bench"',
            f'device_id = "bench"\n[security]\ntrusted_keys = ["{public}"]\n'
            f'versions_file = "{folder / "versions.json"}"',
        )
    if mqtt:
        text = text.replace(
            'device_id = "bench"', f'device_id = "bench"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}'
        )
        text += f'\n[[sinks]]\nkind = "mqtt"\nspool_dir = "{folder / "spool"}"\n'
    if prometheus:
        text = text.replace(
            'device_id = "bench"', f'device_id = "bench"\n[metrics]\nprometheus_port = {port + 1}'
        )
    config.write_text(text)
    return config


def bench_memory(repeats: int, settle_s: float) -> dict[str, dict[str, float]]:
    """`edge-agent run` serving the three bundles, per configuration variant: RSS, private
    memory (what no other process shares) and seconds to the first result (medians)."""
    from tests.conftest import Broker

    broker = Broker(Path(tempfile.mkdtemp()))
    broker.start()
    try:
        table = {}
        for name, variant in MEMORY_VARIANTS.items():
            runs = [
                _serve(_memory_config(Path(tempfile.mkdtemp()), broker.port, **variant), settle_s)
                for _ in range(repeats)
            ]
            table[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        return table
    finally:
        broker.stop()


def _serve(config: Path, settle_s: float) -> dict[str, float]:
    """`edge-agent run -c config` writing JSON lines to out.jsonl beside it: seconds to the
    first result, then RSS and private MB once every model serves."""
    out = config.parent / "out.jsonl"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not (out.exists() and out.stat().st_size > 0):
            if time.perf_counter() - started > 60 or process.poll() is not None:
                raise RuntimeError(f"agent produced no result with {config}")
            time.sleep(0.005)
        first = time.perf_counter() - started
        deadline = time.perf_counter() + settle_s
        while time.perf_counter() < deadline:  # all three models serving by now
            time.sleep(0.05)
        return {"first_s": first, "rss_mb": _rss_mb(process.pid), **_private_mb(process.pid)}
    finally:
        process.terminate()
        process.wait(timeout=15)


# In the agent's order, what each needs first: paho brings ssl, which pydantic imports too.
IMPORT_STEPS = [
    ("numpy", "numpy"),
    ("paho-mqtt, orjson, sqlite3 (ssl included)", "paho.mqtt.client, orjson, sqlite3"),
    ("pydantic, with what its first model class loads", "pydantic, edge_agent.schema"),
    ("config and manifest schemas (models built)", "edge_agent.config, edge_agent.manifest"),
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
    (
        "agent modules (pipeline, runtime, MQTT publisher)",
        "edge_agent.agent, edge_agent.mqtt.publisher",
    ),
    ("prometheus_client (only with the endpoint on)", "edge_agent.prometheus"),
    (
        "cryptography (not in the agent: only its short-lived verifying child loads it)",
        "cryptography.hazmat.primitives.asymmetric.ed25519, "
        "cryptography.hazmat.primitives.serialization",
    ),
]
IMPORT_PROBE = """
import importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
print(rss())
for group in sys.argv[1:]:
    for name in group.split(", "):
        importlib.import_module(name)
    print(rss())
"""


def bench_imports() -> list[tuple[str, float]]:
    """RSS added by each import group, in the order the agent needs them (one process)."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, *(modules for _, modules in IMPORT_STEPS)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    figures = [float(x) for x in out]
    steps = [("python interpreter", figures[0])]
    steps += [(name, b - a) for (name, _), a, b in zip(IMPORT_STEPS, figures, figures[1:])]
    return steps


def _private_mb(pid: int) -> dict[str, float]:
    """Resident pages no other process shares (anonymous memory, mostly): what one more agent
    would cost; the rest of the RSS is library code the kernel shares and can evict."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0]) / 1024
    return {"private_mb": fields["Private_Clean"] + fields["Private_Dirty"]}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_process(repeats: int, settle_s: float = 2.0) -> dict[str, float]:
    """`edge-agent run` with all three bundles: seconds to first result, RSS once serving."""
    firsts, rss = [], []
    for _ in range(repeats):
        serving = _serve(_process_config(Path(tempfile.mkdtemp())), settle_s)
        firsts.append(serving["first_s"])
        rss.append(serving["rss_mb"])
    return {"first_result_s": statistics.median(firsts), "rss_mb": statistics.median(rss)}


def print_memory(memory: dict[str, dict[str, float]]) -> None:
    """Target 5's table: the device configuration against the target, each optional part as
    the RSS it adds or saves."""
    device = next(iter(memory.values()))
    print()
    print(
        "| RSS serving the 3 reference bundles (`edge-agent run`) | MB | vs device config "
        "| private MB | start to first result s |"
    )
    print("|---|---|---|---|---|")
    for index, (name, row) in enumerate(memory.items()):
        mb = row["rss_mb"]
        if index == 0:
            versus = f"target <= {MEMORY_TARGET_MB:g} MB: {verdict(mb <= MEMORY_TARGET_MB)}"
        else:
            versus = f"{mb - device['rss_mb']:+.1f}"
        print(f"| {name} | {mb:.1f} | {versus} | {row['private_mb']:.1f} | {row['first_s']:.2f} |")


def print_imports(steps: list[tuple[str, float]]) -> None:
    """Where the RSS goes before anything serves: each import group in the agent's order."""
    print()
    print("| import (one process, in the agent's order) | RSS added, MB |")
    print("|---|---|")
    for name, mb in steps:
        print(f"| {name} | {mb:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--windows", type=int, default=None, help="windows per model (default 300, RUL 5000)"
    )
    parser.add_argument("--invokes", type=int, default=2000, help="bare invoke() calls timed")
    parser.add_argument("--ingest-seconds", type=float, default=10.0, help="of 25.6 kHz data")
    parser.add_argument(
        "--settle-s", type=float, default=2.0, help="serving time before reading the RSS"
    )
    parser.add_argument(
        "--scale-sources", default="1,4,16,64", help="simulated sensors per scale row"
    )
    parser.add_argument(
        "--scale-seconds", type=float, default=2.0, help="of data per sensor in the scale rows"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cpus, {sys.platform}, python {sys.version.split()[0]}")
    print(
        "| bundle | raw invoke()/s | features+invoke/s (bare) | agent end-to-end/s | e2e / bare "
        "| target | bare, batched/s | e2e / bare batched | e2e / bare, CPU time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in BUNDLES:
        r = bench_model(name, args.repeats, args.windows, args.invokes)
        target = f"e2e >= {RATIO_TARGET:.0%} of bare: {verdict(r['ratio'] >= RATIO_TARGET)}"
        if name == RATE_BUNDLE:
            target += f"; >= {RATE_TARGET:,}/s: {verdict(r['e2e'] >= RATE_TARGET)}"
        print(
            f"| {name} | {r['invoke']:,.0f} | {r['bare']:,.0f} | {r['e2e']:,.0f} | "
            f"{r['ratio']:.0%} | {target} | {r['batched']:,.0f} | {r['batched_ratio']:.0%} | "
            f"{r['cpu_ratio']:.0%} |"
        )
    ingest = bench_ingest(args.repeats, args.ingest_seconds)
    print()
    print("| ingest, 3-axis 25.6 kHz | samples/s |")
    print("|---|---|")
    for key, value in ingest.items():
        print(f"| {key} | {value:,.0f} |")
    print("\n" + frontend_table(args.repeats, args.windows or 200))
    process = bench_process(min(args.repeats, 3), args.settle_s)
    print()
    print("| process (3 bundles loaded, ai-edge-litert) | value |")
    print("|---|---|")
    print(f"| RSS while serving | {process['rss_mb']:.1f} MB |")
    print(f"| process start to first result | {process['first_result_s']:.2f} s |")
    print_memory(bench_memory(min(args.repeats, 3), args.settle_s))
    print_scale(bench_scale([int(n) for n in args.scale_sources.split(",")], args.scale_seconds))
    print_imports(bench_imports())


if __name__ == "__main__":
    main()
