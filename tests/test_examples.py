"""The integration examples (docs/integrations.md, docs/fleet.md) checked for real where the
tools exist here: the Node-RED flow's structure and its function node run under node, the
Telegraf config against real payloads, the Mosquitto ACL loaded by a real Mosquitto, and the
SQLite historian run as a process against a real agent."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

from edge_agent.events import AlarmEvent, ModelRef, Result
from edge_agent.mqtt.topics import Topics
from tests.conftest import (
    REPO_ROOT,
    Broker,
    Subscriber,
    agent_config,
    mqtt_client,
    run_cli,
    wait_until,
)

EXAMPLES = REPO_ROOT / "examples"
REF = ModelRef("vibration-fault", "vibration-fault", "1.0.0", "0" * 64)
OUTPUTS = {
    "classification": {"label": "bearing_outer", "confidence": 0.93, "probabilities": {}},
    "anomaly": {"score": 2.5, "threshold": 0.46, "is_anomaly": True},
    "rul": {"rul": 41.0, "units": "cycles"},
}


def _smoothed_result() -> dict:
    """An anomaly result of a model that smooths its scores (it adds raw_score)."""
    output = {**OUTPUTS["anomaly"], "raw_score": 3.1}
    return Result("press-01", REF, 8, 1.7e9, 1.7e9 + 0.32, "anomaly", output, 3.0).payload(1.7e9)


def _result(task: str, seq: int = 7) -> dict:
    return Result("press-01", REF, seq, 1.7e9, 1.7e9 + 0.32, task, OUTPUTS[task], 3.0).payload(
        1.7e9 + 1
    )


def _alarm(state: str = "escalated") -> dict:
    """An alarm event as the pipeline emits it: escalated, acknowledged or cleared."""
    details = {
        "escalated": ("critical", "label bearing_outer", {"escalated": True}),
        "acknowledged": (
            "critical",
            "acknowledged",
            {"acknowledged": True, "acknowledged_by": "op"},
        ),
        "cleared": (None, "back to normal", {}),
    }
    severity, reason, extra = details[state]
    kind = "cleared" if state == "cleared" else "raised"
    return AlarmEvent("press-01", REF, kind, severity, 1.7e9, reason, 9, extra).payload(1.7e9 + 1)


def _agent_topics() -> dict[str, str]:
    """Every kind of topic one agent publishes, for device press-01 and one model."""
    topics = Topics("pdm", "press-01")
    return {
        "status": topics.status,
        "metrics": topics.metrics,
        "health_event": topics.health_event,
        "result": topics.result("vibration-fault"),
        "alarm": topics.alarm("vibration-fault"),
        "alarm_event": topics.alarm_event("vibration-fault"),
        "input": topics.input_health("vibration-fault"),
        "input_event": topics.input_health_event("vibration-fault"),
        "reply": topics.reply("status"),
    }


def _matched(filters: list[str]) -> set[str]:
    """The kinds of agent topic the subscription filters receive."""
    return {
        kind
        for kind, topic in _agent_topics().items()
        if any(mqtt.topic_matches_sub(f, topic) for f in filters)
    }


# --- Node-RED ------------------------------------------------------------------------------


def test_node_red_flow_is_wired_to_existing_nodes() -> None:
    """Test that the flow is a list of nodes on one tab, every wire and broker reference resolves,
    and the mqtt-in nodes receive exactly the agent's results and alarm events."""
    flow = json.loads((EXAMPLES / "node-red" / "alarms-flow.json").read_text())
    assert isinstance(flow, list) and all("id" in n and "type" in n for n in flow)
    nodes = {n["id"]: n for n in flow}
    assert len(nodes) == len(flow), "duplicate node ids"
    tabs = [n["id"] for n in flow if n["type"] == "tab"]
    assert len(tabs) == 1
    flow_nodes = [n for n in flow if "wires" in n]
    assert {n["type"] for n in flow_nodes} == {"mqtt in", "json", "function", "debug"}
    for node in flow_nodes:
        assert node["z"] == tabs[0], node["id"]
        for output in node["wires"]:
            for target in output:
                assert target in nodes and nodes[target]["z"] == tabs[0], (node["id"], target)
    inputs = [n for n in flow if n["type"] == "mqtt in"]
    assert all(nodes[n["broker"]]["type"] == "mqtt-broker" for n in inputs)
    assert {n["topic"] for n in inputs} == {"pdm/+/+/result", "pdm/+/+/alarm/event"}
    assert _matched([n["topic"] for n in inputs]) == {"result", "alarm_event"}
    # Everything the inputs receive reaches the debug node through json and function.
    reached, frontier = set(), [n["id"] for n in inputs]
    while frontier:
        node = nodes[frontier.pop()]
        reached.add(node["type"])
        frontier += [t for output in node["wires"] for t in output]
    assert {"json", "function", "debug"} <= reached


def test_node_red_function_formats_an_alarm_line() -> None:
    """Test the function node's own code under node: a result is remembered and gives no output;
    an alarm event gives one line naming device, model, transition, reason, seq and the result."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed: `make test` installs it (apt-get install nodejs)")
    flow = json.loads((EXAMPLES / "node-red" / "alarms-flow.json").read_text())
    func = next(n for n in flow if n["type"] == "function")["func"]
    harness = f"""
const store = {{}};
const flow = {{ get: (k) => store[k], set: (k, v) => {{ store[k] = v; }} }};
const run = new Function("msg", "flow", {json.dumps(func)});
const out = [];
for (const msg of JSON.parse(process.argv[1])) out.push(run(msg, flow));
console.log(JSON.stringify(out));
"""
    messages = [
        {"topic": "pdm/press-01/vibration-fault/result", "payload": _result("classification")},
        {"topic": "pdm/press-01/vibration-fault/alarm/event", "payload": _alarm()},
    ]
    done = subprocess.run(
        [node, "-e", harness, json.dumps(messages)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)
    assert first is None
    line = second["payload"]
    assert line.startswith("2023-11-14T22:13:20.000Z press-01/vibration-fault RAISED critical")
    assert "(escalated)" in line and "label bearing_outer" in line
    assert "seq 9" in line and "latest bearing_outer 93.0 %" in line


# --- Telegraf ------------------------------------------------------------------------------


def _path(payload: dict, path: str):
    """The value at a dotted GJSON-style path, or KeyError."""
    for key in path.split("."):
        payload = payload[key]
    return payload


def test_telegraf_conf_parses_and_reads_the_agent_payloads() -> None:
    """Test that telegraf.conf is valid TOML whose inputs subscribe at QoS 1 to exactly the
    agent's result and alarm-event topics, tag device and model from the right levels, and
    read only paths that real payloads carry (required ones always)."""
    config = tomllib.loads((EXAMPLES / "telegraf" / "telegraf.conf").read_text())
    inputs = config["inputs"]["mqtt_consumer"]
    assert _matched([t for i in inputs for t in i["topics"]]) == {"result", "alarm_event"}
    samples = {
        "pdm/+/+/result": [_result(task) for task in OUTPUTS] + [_smoothed_result()],
        "pdm/+/+/alarm/event": [_alarm(s) for s in ("escalated", "acknowledged", "cleared")],
    }
    for source in inputs:
        assert source["qos"] == 1 and source["data_format"] == "json_v2"
        assert source["persistent_session"] and source["client_id"]
        (topic,) = source["topics"]
        (parsing,) = source["topic_parsing"]
        assert parsing["topic"] == topic
        tags = parsing["tags"].split("/")
        assert len(tags) == len(topic.split("/"))  # Telegraf refuses a length mismatch
        agent_topic = _agent_topics()["result" if topic.endswith("result") else "alarm_event"]
        levels = dict(zip(tags, agent_topic.split("/"), strict=True))
        assert levels["device"] == "press-01" and levels["model"] == "vibration-fault"
        (parser,) = source["json_v2"]
        payloads = samples[topic]
        assert parser["timestamp_format"] == "unix"
        assert all(isinstance(_path(p, parser["timestamp_path"]), float) for p in payloads)
        for entry in parser["field"] + parser["tag"]:
            found = [p for p in payloads if _has(p, entry["path"])]
            assert found, f"no payload has {entry['path']}"
            if not entry.get("optional"):
                assert len(found) == len(payloads), f"{entry['path']} is not always there"
    output = config["outputs"]["influxdb_v2"][0]
    assert {"urls", "token", "organization", "bucket"} <= set(output)


def _has(payload: dict, path: str) -> bool:
    try:
        return _path(payload, path) is not None
    except KeyError:
        return False


# --- Mosquitto ACL -------------------------------------------------------------------------

USERS = {"press-01": "pw-a", "press-02": "pw-b", "historian": "pw-h", "operator": "pw-o"}


@pytest.fixture
def acl_broker(tmp_path: Path):
    """examples/mosquitto/mosquitto.conf as given, with a free port, a password file made here
    with mosquitto_passwd, and examples/mosquitto/acl itself."""
    passwords = tmp_path / "passwd"
    passwords.write_text("".join(f"{user}:{pw}\n" for user, pw in USERS.items()))
    subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
    broker = Broker(tmp_path)  # a free port, and the test-run lines (log file, user) below
    lines = []
    for line in (EXAMPLES / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        key = line.split(" ")[0]
        if key == "listener":
            line = f"listener {broker.port} 127.0.0.1"
        elif key == "password_file":
            line = f"password_file {passwords}"
        elif key == "acl_file":
            line = f"acl_file {EXAMPLES / 'mosquitto' / 'acl'}"
        lines.append(line)
    assert sum(line.startswith(("listener", "password_file", "acl_file")) for line in lines) == 3
    own = broker.config.read_text().splitlines()
    lines += [line for line in own if line.startswith(("user ", "log_dest", "log_type"))]
    broker.config.write_text("\n".join(lines) + "\n")
    broker.start()
    yield broker
    broker.stop()


def _login(broker: Broker, user: str, subscribe: str | None = None, **callbacks) -> mqtt.Client:
    """A v5 client logged in as `user`, subscribed (SUBACK received) to `subscribe` if given."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, USERS[user])
    connected, subscribed = threading.Event(), threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.on_subscribe = lambda *_: subscribed.set()
    for name, callback in callbacks.items():
        setattr(client, name, callback)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    wait_until(connected.is_set, 10, f"{user} to connect")
    if subscribe is not None:
        client.subscribe(subscribe, qos=1)
        wait_until(subscribed.is_set, 10, f"{user}'s subscription")
    return client


def test_mosquitto_acl_keeps_each_device_to_its_own_topics(acl_broker: Broker) -> None:
    """Test with the example ACL on a real Mosquitto: device A's publish under device B's prefix
    is refused (PUBACK 135) and never reaches a reader while A's own arrives; A receives its own
    commands, not B's; a client without a password is refused."""
    received: list[str] = []
    reader = _login(
        acl_broker, "historian", "pdm/#", on_message=lambda _c, _u, m: received.append(m.topic)
    )
    acks: dict[int, int] = {}
    device = _login(
        acl_broker,
        "press-01",
        on_publish=lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason.value),
        on_message=lambda _c, _u, m: received.append(f"press-01 got {m.topic}"),
    )
    subscribed = threading.Event()
    device.on_subscribe = lambda *_: subscribed.set()
    device.subscribe([("pdm/press-01/cmd/+", 1), ("pdm/press-02/cmd/+", 1)])
    wait_until(subscribed.is_set, 10, "the device's subscriptions")
    operator = _login(acl_broker, "operator")
    try:
        # Order matters: one publisher's QoS 1 messages reach a subscriber in order, so once
        # the second (allowed) message has arrived the first would have arrived before it.
        forged = device.publish("pdm/press-02/vibration-fault/result", b"forged", qos=1)
        own = device.publish("pdm/press-01/vibration-fault/result", b"own", qos=1)
        wait_until(lambda: "pdm/press-01/vibration-fault/result" in received, 10, "own result")
        wait_until(lambda: forged.mid in acks and own.mid in acks, 10, "both PUBACKs")
        operator.publish("pdm/press-02/cmd/status", b"{}", qos=1).wait_for_publish(5)
        operator.publish("pdm/press-01/cmd/status", b"{}", qos=1).wait_for_publish(5)
        wait_until(lambda: "press-01 got pdm/press-01/cmd/status" in received, 10, "own command")
    finally:
        for client in (reader, device, operator):
            client.disconnect()
            client.loop_stop()
    assert acks[forged.mid] == 135 and acks[own.mid] == 0  # 135: Not authorized
    assert "pdm/press-02/vibration-fault/result" not in received
    assert "press-01 got pdm/press-02/cmd/status" not in received
    anonymous = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    outcome: list[bool] = []
    anonymous.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(reason.is_failure)
    anonymous.connect("127.0.0.1", acl_broker.port)
    anonymous.loop_start()
    wait_until(lambda: outcome, 10, "the anonymous client's CONNACK")
    anonymous.loop_stop()
    assert outcome == [True]


def test_agent_runs_under_the_example_acl(acl_broker: Broker, tmp_path: Path) -> None:
    """Test that a real agent logged in as press-01 under the example ACL delivers every result
    and is never refused by the broker."""
    secret = tmp_path / "agent-password"
    secret.write_text(USERS["press-01"])
    config = agent_config(
        tmp_path,
        "press-01",
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = false\nduration_s = 2',
        [("vibration-fault", "motor")],
        broker_port=acl_broker.port,
        mqtt_options=f'username = "press-01"\npassword = {{ file = "{secret}" }}',
        mqtt_sink=True,
    )
    received: list[str] = []
    reader = _login(
        acl_broker, "historian", "pdm/#", on_message=lambda _c, _u, m: received.append(m.topic)
    )
    try:
        done = run_cli("run", "-c", str(config), timeout=60)
        expected = (2 * 25600 - 8192) // 4096 + 1
        wait_until(
            lambda: received.count("pdm/press-01/vibration-fault/result") >= expected,
            15,
            "every result at the reader",
        )
    finally:
        reader.disconnect()
        reader.loop_stop()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "broker rejected" not in done.stderr and '"rejected_by_broker"' not in done.stderr
    assert "pdm/press-01/status" in received


# --- SQLite historian ----------------------------------------------------------------------


class Historian:
    """examples/sqlite_historian.py as a real process, its output lines collected."""

    def __init__(self, broker: Broker, db: Path) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLES / "sqlite_historian.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(broker.port),
                "--db",
                str(db),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_until(lambda: any(x.startswith("subscribed") for x in self.lines), 30, "historian")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def interrupt(self) -> str:
        """Ctrl-C: returns the summary line after a clean exit."""
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=15) == 0, self.process.stderr.read()
        self.reader.join(5)
        assert "Traceback" not in self.process.stderr.read()
        return self.lines[-1]


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def _sentinel(payload: bytes, seq: int) -> bytes:
    data = orjson.loads(payload)
    data["seq"] = seq
    return orjson.dumps(data)


def test_sqlite_historian_stores_each_result_once(broker: Broker, tmp_path: Path) -> None:
    """Test the historian process against a real agent run, with every message then delivered a
    second time, and again after a restart: one row per distinct result, each alarm transition
    once, a clean Ctrl-C exit with the counts."""
    db = tmp_path / "pdm.sqlite3"
    historian = Historian(broker, db)
    copies = Subscriber(broker, "pdm/+/+/#", client_id="copies")
    config = agent_config(
        tmp_path,
        "press-01",
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = false\nduration_s = 3\n'
        'fault = "bearing_outer"',
        [("vibration-fault", "motor"), ("vibration-anomaly", "motor")],
        broker_port=broker.port,
        mqtt_sink=True,
    )
    done = run_cli("run", "-c", str(config), timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    per_model = (3 * 25600 - 8192) // 4096 + 1
    wait_until(lambda: len(copies.payloads("/result")) >= 2 * per_model, 15, "every result")
    wait_until(lambda: len(copies.payloads("/alarm/event")) >= 2, 15, "both alarm raises")
    with copies.lock:
        delivered = [
            (t, p) for t, p, _ in copies.messages if t.endswith(("/result", "/alarm/event"))
        ]
    copies.close()
    last_topic, last_payload = next((t, p) for t, p in delivered if "vibration-fault/res" in t)

    def redeliver_then(seq: int) -> None:
        """Publish every result and alarm event again, then one new result: once that one is
        stored, every copy before it has been handled (one publisher: in order)."""
        replay = mqtt_client(broker, f"redeliver-{seq}", protocol=mqtt.MQTTv5)
        for topic, payload in delivered:
            replay.publish(topic, payload, qos=1)
        replay.publish(last_topic, _sentinel(last_payload, seq), qos=1).wait_for_publish(10)
        wait_until(lambda: _rows(db, f"SELECT 1 FROM results WHERE seq = {seq}"), 30, f"seq {seq}")
        replay.disconnect()
        replay.loop_stop()

    redeliver_then(per_model + 1)
    first = historian.interrupt()
    printed = historian.lines
    historian = Historian(broker, db)  # a fresh process: duplicates caught by the primary key
    redeliver_then(per_model + 2)
    second = historian.interrupt()

    results = _rows(db, "SELECT device, model, seq FROM results ORDER BY model, seq")
    assert len(results) == len(set(results)) == 2 * per_model + 2
    fault = [s for _, m, s in results if m == "vibration-fault"]
    anomaly = [s for _, m, s in results if m == "vibration-anomaly"]
    assert fault == list(range(1, per_model + 3)) and anomaly == list(range(1, per_model + 1))
    alarms = _rows(db, "SELECT model, state, severity FROM alarms ORDER BY model")
    assert [(m, s) for m, s, _ in alarms] == [
        ("vibration-anomaly", "raised"),
        ("vibration-fault", "raised"),
    ]
    copies_sent = len(delivered)
    assert first == (
        f"stopped: {2 * per_model + 1} results and 2 alarm events stored, "
        f"{copies_sent} duplicates skipped, 0 invalid"
    )
    assert second == (
        f"stopped: 1 results and 0 alarm events stored, {copies_sent} duplicates skipped, 0 invalid"
    )
    assert "alarm press-01/vibration-fault: raised warning at seq 3" in printed
