"""MQTT delivery benchmark against a local Mosquitto started here (not a test).

    python bench/mqtt_bench.py [--quick] [--messages 20000] [--repeats 3]

Measured side by side in one run: bare paho QoS 1 publish rate (the ceiling), the agent's
publisher through the spool for each fsync policy, what MQTT adds per result to the agent's
C-MAPSS pipeline (MQTT sink minus JSON-lines sink) against bare paho's per-message cost,
end-to-end latency from a sensor message to the result at a subscriber at 100 and 1,000
windows/s, and draining a backlog while live results keep flowing. Prints markdown tables
(medians) with each target of issue 12 met or missed. A few minutes by default; --quick less.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt

PROTOCOL = "5"
INFLIGHT = 256  # the agent's default in-flight window, used on both sides
# A benchmark subscriber must not lose messages to the broker's default per-client queue limit.
UNBOUNDED = "max_queued_messages 0\nmax_inflight_messages 0"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from edge_agent import heap  # noqa: E402
from edge_agent.config.models import AlarmConfig  # noqa: E402
from edge_agent.config.mqtt import MqttConfig  # noqa: E402
from edge_agent.config.sinks import MqttSinkConfig  # noqa: E402
from edge_agent.events import ModelRef, Result  # noqa: E402
from edge_agent.mqtt.publisher import MqttPublisher  # noqa: E402
from edge_agent.pipeline import ModelPipeline  # noqa: E402
from edge_agent.sinks.jsonl import JsonlSink  # noqa: E402
from edge_agent.stream.blocks import SampleBlock  # noqa: E402
from tests.conftest import Broker  # noqa: E402

COUNTING_SUBSCRIBER = """
import sys, threading
import paho.mqtt.client as mqtt
port, topic, expected = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
count, done = 0, threading.Event()
def on_message(_c, _u, _m):
    global count
    count += 1
    if count >= expected:
        done.set()
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-count",
                protocol=mqtt.MQTTv5)
c.on_connect = lambda cl, *_: cl.subscribe(topic, qos=1)
c.on_subscribe = lambda *_: print("ready", flush=True)
c.on_message = on_message
c.connect("127.0.0.1", port)
c.loop_start()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
done.wait()
c.loop_stop()
print(count, flush=True)
"""


class CountingSubscriber:
    """A QoS 1, MQTT v5 subscriber in its own process (so its work is not the publisher's),
    counting what arrives on `topic`; the same for the bare and the agent side."""

    def __init__(self, port: int, topic: str, expected: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", COUNTING_SUBSCRIBER, str(port), topic, str(expected)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready"

    def received(self, timeout: float = 30.0) -> int:
        """Wait for the expected count (or `timeout`), then how many arrived."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)  # stdin stays open: closing it ends the count early
        out, _ = self.process.communicate("")
        return int(out.split()[-1])


def bare_paho(
    port: int, n: int, payloads: list[bytes] | None = None, paho_window: bool = True
) -> tuple[float, int]:
    """QoS 1 messages acknowledged per second from one paho publisher (the ceiling), with the
    agent's protocol (v5), in-flight window (256) and payloads, a counting subscriber in its own
    process; and how many that subscriber got. `paho_window=False`: the caller keeps the
    window and paho's own limit is off, as the agent's publisher does."""
    heap.settle()  # every side starts from a settled heap, as the agent serves
    if payloads is None:
        payloads = [orjson.dumps(_result(seq).payload(1.7e9)) for seq in range(1, n + 1)]
    sink = CountingSubscriber(port, "bench/bare", n)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(INFLIGHT if paho_window else 0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    infos = []
    for i, payload in enumerate(payloads):
        if not paho_window and i >= INFLIGHT:
            infos[i - INFLIGHT].wait_for_publish(60)  # at most INFLIGHT unacknowledged
        infos.append(client.publish("bench/bare", payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return n / elapsed, sink.received()


def _result(seq: int) -> Result:
    ref = ModelRef("bench-model", "bench", "1.0.0", "0" * 64)
    output = {"label": "healthy", "confidence": 0.99, "probabilities": {"healthy": 0.99}}
    return Result("bench", ref, seq, 1.7e9 + seq, 1.7e9 + seq + 0.3, "classification", output, 0.5)


def _publisher(port: int, folder: Path, fsync: str = "normal") -> MqttPublisher:
    return MqttPublisher(
        MqttSinkConfig(kind="mqtt", spool_dir=folder, fsync=fsync, inflight=INFLIGHT),
        MqttConfig(
            host="127.0.0.1", port=port, reconnect_min_s=1, reconnect_max_s=1, protocol=PROTOCOL
        ),
        "bench",
        birth=lambda: {"state": "online", "device": "bench"},
    )


def _wait_empty(publisher: MqttPublisher, timeout: float) -> None:
    """Until every spooled message is acknowledged (their rows go with the next commit)."""
    deadline = time.perf_counter() + timeout
    while publisher.undelivered() and time.perf_counter() < deadline:
        time.sleep(0.002)


def publisher_rate(port: int, n: int, fsync: str, block: int = 50) -> tuple[float, int]:
    """Results per second spooled, published and acknowledged (the same protocol, in-flight
    window and subscriber as `bare_paho`); and how many the subscriber got."""
    heap.settle()  # every side starts from a settled heap, as the agent serves
    folder = Path(tempfile.mkdtemp())
    sink = CountingSubscriber(port, "pdm/bench/+/result", n)
    publisher = _publisher(port, folder, fsync)
    publisher.connected_event.wait(10)
    start = time.perf_counter()
    for first in range(1, n + 1, block):
        for seq in range(first, min(first + block, n + 1)):
            publisher.emit(_result(seq))
        publisher.flush()
    _wait_empty(publisher, 120)
    elapsed = time.perf_counter() - start
    publisher.close()
    got = sink.received()
    shutil.rmtree(folder)
    return n / elapsed, got


def rul_replay(n: int) -> tuple[object, list[SampleBlock]]:
    """The C-MAPSS bundle and n + 39 sensor rows as replay blocks of 4,096 rows (n windows)."""
    from edge_agent.runtime import load_model

    runner = load_model(ROOT / "models/cmapss-fd001-rul")
    spec = runner.manifest.input
    mean, std = np.asarray(spec.features[0].mean), np.asarray(spec.features[0].std)
    rows = mean + std * np.random.default_rng(0).normal(size=(n + spec.window - 1, len(mean)))
    blocks = []
    for first in range(0, len(rows), 4096):
        chunk = rows[first : first + 4096]
        times = 1.7e9 + first + np.arange(len(chunk), dtype=np.float64)
        blocks.append(
            SampleBlock("engine", tuple(spec.channels), chunk, times[0], timestamps=times)
        )
    return runner, blocks


def agent_pass(runner: object, blocks: list[SampleBlock], sink: object) -> tuple[float, int]:
    """Seconds to push every block through the model pipeline into `sink` (flushed per block,
    as the agent's main loop does), and the number of results."""
    pipeline = ModelPipeline("bench", "rul", runner, AlarmConfig(), [sink])
    start = time.perf_counter()
    for block in blocks:
        pipeline.push(block, time.perf_counter())
        sink.flush()
    return time.perf_counter() - start, pipeline.results


def delivery_cost(port: int, n: int) -> dict[str, float]:
    """What MQTT adds per result in the agent (the C-MAPSS pipeline with the MQTT sink, until
    every result is acknowledged, minus the same pipeline with the JSON-lines sink), against
    bare paho's per-message cost for the same payloads, protocol, window and subscriber."""
    heap.settle()  # every side starts from a settled heap, as the agent serves
    runner, blocks = rul_replay(n)
    captured = ListSink()
    agent_pass(runner, blocks, captured)
    payloads = [orjson.dumps(e.payload(1.7e9)) for e in captured.events if isinstance(e, Result)]
    bare_rate, bare_got = bare_paho(port, len(payloads), payloads)
    jsonl_s, results = agent_pass(runner, blocks, JsonlSink(os.devnull))
    folder = Path(tempfile.mkdtemp())
    counter = CountingSubscriber(port, "pdm/bench/+/result", results)
    publisher = _publisher(port, folder)
    publisher.connected_event.wait(10)
    start = time.perf_counter()
    agent_pass(runner, blocks, publisher)
    _wait_empty(publisher, 120)
    mqtt_s = time.perf_counter() - start
    publisher.close()
    got = counter.received()
    shutil.rmtree(folder)
    return {
        "bare_us": 1e6 / bare_rate,
        "bare_got": bare_got,
        "jsonl_us": 1e6 * jsonl_s / results,
        "mqtt_us": 1e6 * mqtt_s / results,
        "added_us": 1e6 * (mqtt_s - jsonl_s) / results,
        "got": got,
        "results": results,
        "payload_bytes": statistics.median(len(p) for p in payloads),
    }


class ListSink:
    def __init__(self) -> None:
        self.events: list = []

    def emit(self, event: object) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass


def _timestamping_subscriber(port: int, out: Path) -> subprocess.Popen:
    """mosquitto_sub (C, its own process) writing each result with its arrival time to `out`,
    ready once subscribed. A Python subscriber of every message fell behind a fast drain, so
    live results queued behind backlog ones in its socket and it measured itself."""
    handle = out.open("w")
    process = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            "pdm/bench/+/result",
            "-F",
            "%U %p",
            "-d",
        ],
        stdout=handle,
    )
    deadline = time.perf_counter() + 10
    while b"SUBACK" not in out.read_bytes():  # -d prints the subscription's acknowledgement
        if time.perf_counter() > deadline:
            raise RuntimeError("mosquitto_sub did not subscribe")
        time.sleep(0.01)
    return process


def _wait_for(received: Path, marker: bytes, timeout: float) -> None:
    """Until `marker` is in the last few kB mosquitto_sub wrote (or `timeout`)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with received.open("rb") as handle:
            handle.seek(max(0, received.stat().st_size - 8192))
            if marker in handle.read():
                return
        time.sleep(0.01)


def _arrivals(received: Path, first_live: int) -> dict[int, float]:
    """First arrival time of each live result (seq > first_live) in mosquitto_sub's output."""
    seen: dict[int, float] = {}
    for line in received.read_bytes().splitlines():
        stamp, _, payload = line.partition(b" ")
        if not payload.startswith(b"{"):
            continue  # a debug line of -d
        seq = orjson.loads(payload)["seq"]
        if seq > first_live:
            seen.setdefault(seq, float(stamp))
    return seen


def _backlog_left(publisher: MqttPublisher, n: int) -> bool:
    """Whether a message spooled before the broker came back (id <= n) is unacknowledged."""
    oldest = publisher.spool.oldest_stored()
    return oldest is not None and oldest[0] <= n


def backlog(broker: Broker, n: int) -> dict[str, float]:
    """Spool n results with the broker down, start it, time the drain while about 100 live
    results/s keep coming; live latency is measured by a subscriber in its own process. This
    process plays the agent, so its heap is settled as the agent's is once serving."""
    heap.settle()
    folder = Path(tempfile.mkdtemp())
    publisher = _publisher(broker.port, folder)
    for first in range(1, n + 1, 1000):
        for seq in range(first, min(first + 1000, n + 1)):
            publisher.emit(_result(seq))
        publisher.flush()
    broker.start()
    received = folder / "received.txt"
    listener = _timestamping_subscriber(broker.port, received)
    publisher.connected_event.wait(30)
    start = time.perf_counter()
    live_sent: dict[int, float] = {}
    seq = n
    # Drained when no backlog message (id <= n) is left; live ones come and go meanwhile.
    while _backlog_left(publisher, n) and time.perf_counter() - start < 300:
        seq += 1
        live_sent[seq] = time.time()
        publisher.emit(_result(seq))
        publisher.flush()
        time.sleep(0.01)
    drained = time.perf_counter() - start
    _wait_empty(publisher, 30)
    publisher.close()
    _wait_for(received, f'"seq":{seq},'.encode(), 10)  # the last live result arrived
    listener.terminate()
    listener.wait(timeout=10)
    seen = _arrivals(received, first_live=n)
    waits = sorted(seen[s] - t for s, t in live_sent.items() if s in seen)
    shutil.rmtree(folder)
    return {
        "rate": n / drained,
        "live_p50_ms": 1000 * waits[len(waits) // 2] if waits else float("nan"),
        "live_p99_ms": 1000 * waits[int(len(waits) * 0.99)] if waits else float("nan"),
        "live_count": len(waits),
    }


def latency(port: int, rate: float, seconds: float) -> tuple[float, float, int]:
    """Sensor row published -> its RUL result received (p50, p99 ms), agent in its own process.
    The heap of this process (the sensor and the subscriber) is settled first, so a full
    collection of the bench's own objects does not pause the timestamping."""
    heap.settle()
    from edge_agent.runtime import load_model

    manifest = load_model(ROOT / "models/cmapss-fd001-rul").manifest
    means = manifest.input.features[0].mean
    folder = Path(tempfile.mkdtemp())
    config = folder / "agent.toml"
    config.write_text(f"""
device_id = "lat"
[log]
level = "warning"
[mqtt]
host = "127.0.0.1"
port = {port}
[[sources]]
kind = "mqtt"
id = "engine"
topic = "plant/lat/rows"
[[models]]
bundle = "{ROOT / "models/cmapss-fd001-rul"}"
source = "engine"
[models.alarm]
enabled = false
[[sinks]]
kind = "mqtt"
spool_dir = "{folder / "spool"}"
""")
    received: dict[float, float] = {}

    def on_message(_c, _u, message) -> None:
        received[orjson.loads(message.payload)["window"]["end"]] = time.time()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-lat-sub")
    sub.on_connect = lambda c, *_: c.subscribe("pdm/lat/+/result", qos=1)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-lat-pub")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    base = time.time() - 1e6
    row = dict(zip(manifest.input.channels, means, strict=True))
    k = 0
    deadline = time.time() + 60
    while not received and time.time() < deadline:  # warm up until results flow
        pub.publish("plant/lat/rows", orjson.dumps({"ts": base + k, **row}), qos=1)
        k += 1
        time.sleep(0.01)
    sent: dict[float, float] = {}
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # not a busy wait: this process also receives the results
        ts = base + k + i
        sent[ts] = time.time()
        pub.publish("plant/lat/rows", orjson.dumps({"ts": ts, **row}), qos=1)
    end = time.time() + 10
    while time.time() < end and not all(ts in received for ts in list(sent)[-10:]):
        time.sleep(0.01)
    agent.terminate()
    agent.wait(timeout=15)
    for client in (pub, sub):
        client.disconnect()
        client.loop_stop()
    shutil.rmtree(folder)
    waits = sorted(1000 * (received[ts] - t) for ts, t in sent.items() if ts in received)
    return waits[len(waits) // 2], waits[int(len(waits) * 0.99)], len(waits)


LATENCY_TARGET_MS = 5.0  # p99 at 1,000 windows/s (issue 12, target 4)
DRAIN_TARGET, LIVE_TARGET_MS = 10_000, 50.0  # backlog msg/s, live p99 meanwhile


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument(
        "--quick", action="store_true", help="5,000 messages, 20,000 backlog, 5 s of latency"
    )
    args = parser.parse_args()
    if args.quick:
        args.messages, args.backlog, args.latency_seconds = 5000, 20_000, 5.0
    folder = Path(tempfile.mkdtemp())
    broker = Broker(folder, listeners=UNBOUNDED)
    broker.start()
    try:
        rows, costs = [], []
        for _ in range(args.repeats):
            bare = bare_paho(broker.port, args.messages)
            own_window = bare_paho(broker.port, args.messages, paho_window=False)
            spooled = {
                f: publisher_rate(broker.port, args.messages, f)
                for f in ("normal", "always", "off")
            }
            rows.append((bare, spooled, own_window))
            costs.append(delivery_cost(broker.port, args.messages))
        bare = statistics.median(r[0][0] for r in rows)
        bare_got = min(r[0][1] for r in rows)
        print(
            f"| path ({args.messages} QoS 1 messages acknowledged; MQTT v5, in-flight "
            f"{INFLIGHT}, counting subscriber in its own process) | msg/s | us per message | "
            "vs bare | received by subscriber |"
        )
        print("|---|---|---|---|---|")
        print(
            f"| bare paho publish, same payloads | {bare:,.0f} | {1e6 / bare:.1f} | 100% | "
            f"{bare_got}/{args.messages} |"
        )
        own = statistics.median(r[2][0] for r in rows)
        print(
            "| bare paho, window kept by the caller (paho's limit off, as the agent) | "
            f"{own:,.0f} | {1e6 / own:.1f} | {own / bare:.0%} | "
            f"{min(r[2][1] for r in rows)}/{args.messages} |"
        )
        for policy in ("normal", "always", "off"):
            rate = statistics.median(r[1][policy][0] for r in rows)
            got = min(r[1][policy][1] for r in rows)
            print(
                f"| agent publisher via spool, fsync={policy} | {rate:,.0f} | "
                f"{1e6 / rate:.1f} | {rate / bare:.0%} | {got}/{args.messages} |"
            )
        print_delivery(costs)
    finally:
        broker.stop()
    broker = Broker(Path(tempfile.mkdtemp()), listeners=UNBOUNDED)
    broker.start()
    try:
        runs = {
            r: [latency(broker.port, r, args.latency_seconds) for _ in range(args.repeats)]
            for r in (100.0, 1000.0)
        }
    finally:
        broker.stop()
    print()
    print(
        f"| sensor row published -> result at subscriber (RUL model, MQTT in and out; medians "
        f"of {args.repeats} runs) | p50 ms | p99 ms | results per run | target |"
    )
    print("|---|---|---|---|---|")
    for r, measured in runs.items():
        p50 = statistics.median(m[0] for m in measured)
        p99 = statistics.median(m[1] for m in measured)
        target = "-"
        if r == 1000.0:
            target = f"p99 <= {LATENCY_TARGET_MS:g} ms: {verdict(p99 <= LATENCY_TARGET_MS)}"
        spread = ", ".join(f"{m[1]:.1f}" for m in measured)
        print(
            f"| {r:,.0f} windows/s | {p50:.1f} | {p99:.1f} (runs: {spread}) | "
            f"{min(m[2] for m in measured)} | {target} |"
        )
    drains = []
    for _ in range(args.repeats):
        broker = Broker(Path(tempfile.mkdtemp()), listeners=UNBOUNDED)
        try:
            drains.append(backlog(broker, args.backlog))
        finally:
            broker.stop()
    drain = {key: statistics.median(d[key] for d in drains) for key in drains[0]}
    print()
    print(
        f"| backlog of {args.backlog:,} results after an outage (medians of {args.repeats} runs)"
        " | value | target |"
    )
    print("|---|---|---|")
    rate, p99 = drain["rate"], drain["live_p99_ms"]
    rates = ", ".join(f"{d['rate']:,.0f}" for d in drains)
    print(
        f"| drain rate | {rate:,.0f} msg/s | >= {DRAIN_TARGET:,}: "
        f"{verdict(rate >= DRAIN_TARGET)} (runs: {rates}) |"
    )
    print(
        f"| live results during the drain (about 100/s), latency p50 / p99 | "
        f"{drain['live_p50_ms']:.1f} / {p99:.1f} ms ({drain['live_count']:.0f} results) | "
        f"p99 <= {LIVE_TARGET_MS:g} ms: {verdict(p99 <= LIVE_TARGET_MS)} |"
    )


def print_delivery(costs: list[dict[str, float]]) -> None:
    """The delivery target's table: medians of the runs, the ratio per run then its median."""
    first = costs[0]
    med = {key: statistics.median(c[key] for c in costs) for key in first}
    ratio = statistics.median(c["added_us"] / c["bare_us"] for c in costs)
    print()
    print(
        f"| delivery per result (C-MAPSS pipeline, {first['results']:,} results of "
        f"{med['payload_bytes']:.0f} bytes; MQTT v5, QoS 1, in-flight {INFLIGHT}, counting "
        "subscriber in its own process) | us per result | received |"
    )
    print("|---|---|---|")
    print(f"| agent, JSON-lines sink | {med['jsonl_us']:.1f} | - |")
    got = f"{min(c['got'] for c in costs)}/{first['results']}"
    print(f"| agent, MQTT sink until every result is acknowledged | {med['mqtt_us']:.1f} | {got} |")
    print(f"| added by MQTT (the difference) | {med['added_us']:.1f} | - |")
    bare_got = f"{min(c['bare_got'] for c in costs)}/{first['results']}"
    print(f"| bare paho, the same payloads | {med['bare_us']:.1f} | {bare_got} |")
    print(
        f"| added by MQTT / bare paho (target <= 100%) | {ratio:.0%}: {verdict(ratio <= 1.0)} | - |"
    )


if __name__ == "__main__":
    main()
