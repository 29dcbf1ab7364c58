"""How many of the agent's results per second can one consumer process take? (not a test)

    python bench/consumer_bench.py [--messages 20000] [--repeats 3] [--devices 10]

Against a real Mosquitto started here on a free port, a publisher process sends --messages
result payloads built exactly as the agent builds them (edge_agent.events.Result.payload, with
the vibration-fault bundle's name, version, hash and seven labels), spread over --devices
devices, at QoS 1 with 256 messages in flight (the agent's default). One consumer process
(paho, MQTT v5, QoS 1 on pdm/+/+/result) takes them and does, per message, one of:

- count: nothing but count (paho and the broker alone);
- ResultTracker.accept: parse, validate against the contract, de-duplicate (the project's
  consumer helper, as examples/shared_consumers.py uses it);
- historian: that plus one SQLite row committed (examples/sqlite_historian.py's Historian).

Two cases: live (consumer subscribed while the publisher sends at full speed: the slower of
the two sets the pace) and backlog (the messages wait at the broker for the consumer's
persistent session, then it connects and drains them: the consumer's own limit). Results/s is
counted at the consumer from its first message to its last; the table gives the median of
--repeats runs, and the consumer's CPU time over the same span (100 % = one core, the most a
Python process with one network thread can use).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.events import ModelRef, Result  # noqa: E402
from edge_agent.mqtt.consumer import ResultTracker  # noqa: E402
from edge_agent.mqtt.topics import Topics  # noqa: E402

WORK = {
    "count": "count only",
    "tracker": "ResultTracker.accept",
    "historian": "historian: accept + SQLite row",
}
CASES = ("live", "backlog")
TOPIC = "pdm/+/+/result"
INFLIGHT = 256
TIMEOUT_S = 300.0


def payloads(n: int, devices: int) -> list[tuple[str, bytes]]:
    """n (topic, payload) pairs of the vibration-fault classifier, round robin over devices."""
    manifest = json.loads((ROOT / "models" / "vibration-fault" / "manifest.json").read_text())
    labels = manifest["output"]["labels"]
    ref = ModelRef(
        "vibration-fault", manifest["name"], manifest["version"], manifest["model_sha256"]
    )
    out, t0 = [], time.time()
    for i in range(n):
        device, seq = f"press-{i % devices:03d}", i // devices + 1
        top = labels[seq % len(labels)]
        probabilities = {label: 0.01 for label in labels} | {top: 1 - 0.01 * (len(labels) - 1)}
        output = {"label": top, "confidence": probabilities[top], "probabilities": probabilities}
        start = t0 + seq * 0.16
        result = Result(device, ref, seq, start, start + 0.32, "classification", output, 3.1)
        out.append(
            (Topics("pdm", device).result(ref.id), orjson.dumps(result.payload(time.time())))
        )
    return out


def run_publisher(port: int, n: int, devices: int) -> None:
    """Publish every payload at QoS 1 and wait for every PUBACK; print the rate as JSON."""
    messages = payloads(n, devices)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(INFLIGHT)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(TIMEOUT_S)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    size = statistics.median(len(payload) for _, payload in messages)
    print(json.dumps({"rate": n / elapsed, "payload_bytes": size}), flush=True)


def load_historian():
    spec = importlib.util.spec_from_file_location(
        "historian", ROOT / "examples/sqlite_historian.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Historian


def run_consumer(port: int, n: int, work: str, phase: str, client_id: str, folder: Path) -> None:
    """phase subscribe: create a persistent session subscribed to results, then leave.
    phase live / drain: receive n results doing `work` on each; print timings as JSON."""
    handle = None
    if work == "tracker":
        handle = ResultTracker().accept
    elif work == "historian":
        handle = load_historian()(folder / f"{client_id}.sqlite3").handle
    count, first, last, cpu_first = 0, 0.0, 0.0, 0.0
    done, subscribed = threading.Event(), threading.Event()
    failed: list[Exception] = []

    def on_message(_c, _u, message) -> None:
        nonlocal count, first, last, cpu_first
        if handle is not None:
            try:
                handle(message.topic, message.payload)
            except Exception as exc:  # report it and stop, rather than wait for the timeout
                failed.append(exc)
                done.set()
                return
        count += 1
        if count == 1:
            first, cpu_first = time.perf_counter(), time.process_time()
        if count >= n:
            last = time.perf_counter()
            done.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    properties = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=phase != "drain", properties=properties)
    client.loop_start()
    if not subscribed.wait(30):
        raise SystemExit("consumer: no SUBACK within 30 s")
    print("ready", flush=True)
    if phase != "subscribe":
        done.wait(TIMEOUT_S)
        if failed:
            raise SystemExit(f"consumer ({work}): {failed[0]!r}")
        cpu = time.process_time() - cpu_first
        span = (last or time.perf_counter()) - first
        rate = (count - 1) / span if count > 1 and span > 0 else 0.0
        print(json.dumps({"count": count, "rate": rate, "cpu": cpu / span if span else 0.0}))
    client.disconnect()
    client.loop_stop()


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )


def _finish(process: subprocess.Popen) -> dict:
    out, _ = process.communicate(timeout=TIMEOUT_S + 30)
    if process.returncode != 0:
        raise SystemExit(f"{process.args[2:4]} exited with {process.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def one_run(port: int, args, work: str, case: str, run: int, folder: Path) -> dict:
    common = ["--port", str(port), "--messages", str(args.messages)]
    consumer = ["--role", "consumer", *common, "--work", work, "--folder", str(folder)]
    client_id = f"bench-{case}-{work}-{run}"
    publisher_args = ["--role", "publisher", *common, "--devices", str(args.devices)]
    if case == "live":
        receiver = _start(*consumer, "--phase", "live", "--client-id", client_id)
        assert receiver.stdout.readline().strip() == "ready"
        published = _finish(_start(*publisher_args))
    else:
        setup = _start(*consumer, "--phase", "subscribe", "--client-id", client_id)
        setup.communicate(timeout=60)
        published = _finish(_start(*publisher_args))  # every message acknowledged: all queued
        receiver = _start(*consumer, "--phase", "drain", "--client-id", client_id)
        assert receiver.stdout.readline().strip() == "ready"
    received = _finish(receiver)
    return {**received, "published_rate": published["rate"], "bytes": published["payload_bytes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--role", choices=["bench", "publisher", "consumer"], default="bench")
    parser.add_argument("--port", type=int)
    parser.add_argument("--work", choices=list(WORK), default="count")
    parser.add_argument("--phase", choices=["subscribe", "live", "drain"], default="live")
    parser.add_argument("--client-id", default="bench-consumer")
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.role == "publisher":
        run_publisher(args.port, args.messages, args.devices)
        return
    if args.role == "consumer":
        run_consumer(args.port, args.messages, args.work, args.phase, args.client_id, args.folder)
        return

    from tests.conftest import Broker

    folder = Path(tempfile.mkdtemp(prefix="consumer-bench-"))
    broker = Broker(folder)
    broker.start()
    rows = []
    try:
        for case in CASES:
            for work in WORK:
                runs = [
                    one_run(broker.port, args, work, case, r, folder) for r in range(args.repeats)
                ]
                rows.append((case, work, runs))
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)

    size = rows[0][2][0]["bytes"]
    print(
        f"\n| consumer: one process, {args.messages:,} QoS 1 results from {args.devices} devices "
        f"({size:.0f}-byte payloads) | results/s (median of {args.repeats}) | range "
        "| consumer CPU | received | publisher msg/s |"
    )
    print("|---|---|---|---|---|---|")
    for case, work, runs in rows:
        rates = [r["rate"] for r in runs]
        received = min(r["count"] for r in runs)
        print(
            f"| {case}: {WORK[work]} | {statistics.median(rates):,.0f} "
            f"| {min(rates):,.0f}-{max(rates):,.0f} "
            f"| {100 * statistics.median(r['cpu'] for r in runs):.0f} % "
            f"| {received:,}/{args.messages:,} "
            f"| {statistics.median(r['published_rate'] for r in runs):,.0f} |"
        )


if __name__ == "__main__":
    main()
