"""MQTT delivery benchmark against a local Mosquitto started here (not a test).

    python bench/mqtt_bench.py [--messages 20000] [--repeats 3]

Measured side by side in one run: bare paho QoS 1 publish rate (the ceiling), the agent's
publisher through the spool for each fsync policy, end-to-end latency from a sensor message to
the result at a subscriber at 100 and 1,000 windows/s, and draining a 100,000-message backlog
while live results keep flowing. Prints markdown tables (medians).
"""

from __future__ import annotations

import argparse
import contextlib
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

from edge_agent.config.mqtt import MqttConfig  # noqa: E402
from edge_agent.config.sinks import MqttSinkConfig  # noqa: E402
from edge_agent.events import ModelRef, Result  # noqa: E402
from edge_agent.mqtt.publisher import MqttPublisher  # noqa: E402
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


def bare_paho(port: int, n: int) -> tuple[float, int]:
    """QoS 1 messages acknowledged per second from one paho publisher (the ceiling), with the
    agent's protocol (v5), in-flight window (256) and payloads, a counting subscriber in its own
    process; and how many that subscriber got."""
    payloads = [orjson.dumps(_result(seq).payload(1.7e9)) for seq in range(1, n + 1)]
    sink = CountingSubscriber(port, "bench/bare", n)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(INFLIGHT)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    infos = [client.publish("bench/bare", payload, qos=1) for payload in payloads]
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
    deadline = time.perf_counter() + timeout
    while publisher.spool.count and time.perf_counter() < deadline:
        time.sleep(0.002)


def publisher_rate(port: int, n: int, fsync: str, block: int = 50) -> tuple[float, int]:
    """Results per second spooled, published and acknowledged (the same protocol, in-flight
    window and subscriber as `bare_paho`); and how many the subscriber got."""
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


LIVE_SUBSCRIBER = """
import sys, time, json, threading
import paho.mqtt.client as mqtt
port, first_live, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
seen, ready = {}, threading.Event()
def on_message(_c, _u, m):
    seq = json.loads(m.payload)["seq"]
    if seq > first_live:
        seen.setdefault(seq, time.time())
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-live")
c.on_connect = lambda cl, *_: cl.subscribe("pdm/bench/+/result", qos=1)
c.on_subscribe = lambda *_: print("ready", flush=True)
c.on_message = on_message
c.connect("127.0.0.1", port)
c.loop_start()
sys.stdin.read()
c.loop_stop()
json.dump(seen, open(out, "w"))
"""


def backlog(broker: Broker, n: int) -> dict[str, float]:
    """Spool n results with the broker down, start it, time the drain while about 100 live
    results/s keep coming; live latency is measured by a subscriber in its own process."""
    folder = Path(tempfile.mkdtemp())
    publisher = _publisher(broker.port, folder)
    for first in range(1, n + 1, 1000):
        for seq in range(first, min(first + 1000, n + 1)):
            publisher.emit(_result(seq))
        publisher.flush()
    broker.start()
    received = folder / "live.json"
    listener = subprocess.Popen(
        [sys.executable, "-c", LIVE_SUBSCRIBER, str(broker.port), str(n), str(received)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    listener.stdout.readline()  # "ready"
    publisher.connected_event.wait(30)
    start = time.perf_counter()
    live_sent: dict[int, float] = {}
    seq = n
    # Drained when no backlog message (id <= n) is left; live ones come and go meanwhile.
    while publisher.spool.fetch(0, 1, max_id=n) and time.perf_counter() - start < 300:
        seq += 1
        live_sent[seq] = time.time()
        publisher.emit(_result(seq))
        publisher.flush()
        time.sleep(0.01)
    drained = time.perf_counter() - start
    _wait_empty(publisher, 30)
    publisher.close()
    listener.communicate("", timeout=30)
    seen = {int(k): v for k, v in orjson.loads(received.read_bytes()).items()}
    waits = sorted(seen[s] - t for s, t in live_sent.items() if s in seen)
    shutil.rmtree(folder)
    return {
        "rate": n / drained,
        "live_p50_ms": 1000 * waits[len(waits) // 2] if waits else float("nan"),
        "live_p99_ms": 1000 * waits[int(len(waits) * 0.99)] if waits else float("nan"),
        "live_count": len(waits),
    }


def latency(port: int, rate: float, seconds: float) -> tuple[float, float, int]:
    """Sensor row published -> its RUL result received (p50, p99 ms), agent in its own process."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    broker = Broker(folder, listeners=UNBOUNDED)
    broker.start()
    try:
        rows = []
        for _ in range(args.repeats):
            bare = bare_paho(broker.port, args.messages)
            spooled = {
                f: publisher_rate(broker.port, args.messages, f)
                for f in ("normal", "always", "off")
            }
            rows.append((bare, spooled))
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
        for policy in ("normal", "always", "off"):
            rate = statistics.median(r[1][policy][0] for r in rows)
            got = min(r[1][policy][1] for r in rows)
            print(
                f"| agent publisher via spool, fsync={policy} | {rate:,.0f} | "
                f"{1e6 / rate:.1f} | {rate / bare:.0%} | {got}/{args.messages} |"
            )
    finally:
        broker.stop()
    broker = Broker(Path(tempfile.mkdtemp()), listeners=UNBOUNDED)
    broker.start()
    try:
        lat = {r: latency(broker.port, r, args.latency_seconds) for r in (100.0, 1000.0)}
    finally:
        broker.stop()
    print()
    print(
        "| sensor row published -> result at subscriber (RUL model, MQTT in and out) | "
        "p50 ms | p99 ms | results |"
    )
    print("|---|---|---|---|")
    for r, (p50, p99, count) in lat.items():
        print(f"| {r:,.0f} windows/s | {p50:.1f} | {p99:.1f} | {count} |")
    broker = Broker(Path(tempfile.mkdtemp()), listeners=UNBOUNDED)
    try:
        drain = backlog(broker, args.backlog)
    finally:
        broker.stop()
    print()
    print(f"| backlog of {args.backlog:,} results after an outage | value |")
    print("|---|---|")
    print(f"| drain rate | {drain['rate']:,.0f} msg/s |")
    print(
        f"| live results during the drain (about 100/s), latency p50 / p99 | "
        f"{drain['live_p50_ms']:.1f} / {drain['live_p99_ms']:.1f} ms "
        f"({drain['live_count']} results) |"
    )


if __name__ == "__main__":
    main()
