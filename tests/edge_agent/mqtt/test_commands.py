"""Commands: verbs and response topics validated before anything runs; a hostile command never
mutes the device (against a real Mosquitto and the real agent process); reload answers with its
outcome; ack and fault act."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.logs import RateLimiter
from edge_agent.mqtt.commands import CommandRouter, response_topic_problem
from edge_agent.mqtt.contract import CommandReply, HealthEvent, StatusPayload
from edge_agent.mqtt.topics import Topics
from tests.conftest import (
    REPO_ROOT,
    Broker,
    Subscriber,
    agent_config,
    mqtt_client,
    read_jsonl,
    start_agent,
    wait_until,
)

DEVICE = "rig1"
INFLIGHT = 8
TOPICS = Topics("pdm", DEVICE)
FORBIDDEN = [*TOPICS.reserved(), "plant/+/raw", "homeassistant/#"]


def test_response_topics_that_would_reach_a_device_are_refused() -> None:
    """Test that wildcards, $ topics and every topic a device publishes or obeys are refused,
    while an ordinary requester topic is accepted."""
    refused = [
        "x/#",
        "x/+/y",
        "$SYS/broker",
        "",
        "pdm/rig1/vibration-fault/result",
        "pdm/rig1/vibration-fault/alarm",
        "pdm/rig1/vibration-fault/alarm/event",
        "pdm/rig1/status",
        "pdm/rig2/metrics",
        "pdm/rig1/health/event",
        "pdm/other/cmd/reload",
        "pdm/rig1/cmd/status/reply",
        "plant/7/raw",
        "homeassistant/device/x/config",
    ]
    for topic in refused:
        assert response_topic_problem(topic, FORBIDDEN, None) is not None, topic
    for topic in ("replies/operator-1", "pdm/replies/abc", "pdm/rig1/notes"):
        assert response_topic_problem(topic, FORBIDDEN, None) is None, topic
    assert response_topic_problem("replies/a", FORBIDDEN, ["ops/#"]) == (
        "response topic is not in the allow-list"
    )
    assert response_topic_problem("ops/a", FORBIDDEN, ["ops/#"]) is None


def test_router_counts_under_fixed_keys_and_never_raises() -> None:
    """Test that many distinct bad verbs add no new counter keys, a failing handler is
    answered, and a bad verb without a response topic is not answered anywhere."""

    def boom(_request: dict) -> dict:
        raise RuntimeError("bug")

    router = CommandRouter(
        TOPICS, {"status": lambda _r: {"ok": True}, "boom": boom}, FORBIDDEN, None, RateLimiter(60)
    )
    for i in range(300):
        answer = router.handle(f"pdm/{DEVICE}/cmd/verb{i}", b"{}")
        assert answer is not None and answer.reply["ok"] is False
    assert router.handle(f"pdm/{DEVICE}/cmd/bad!verb", b"{}") is None
    assert router.handle(f"pdm/{DEVICE}/cmd/status", b"[1]").reply["ok"] is False
    assert router.handle(f"pdm/{DEVICE}/cmd/boom", b"").reply == {
        "ok": False,
        "error": "internal error: RuntimeError",
    }
    assert dict(router.counters) == {
        "command:unknown": 300,
        "command:invalid": 2,
        "command:boom": 1,
        "command:failed": 1,
    }


def _config(folder: Path, broker: Broker, source: str = "") -> Path:
    return agent_config(
        folder,
        DEVICE,
        source
        or '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true\nblock_samples = 1024',
        [("vibration-fault", "motor")],
        broker_port=broker.port,
        mqtt_options="reconnect_min_s = 1\nreconnect_max_s = 1",
        mqtt_sink=True,
        sink_options=f"inflight = {INFLIGHT}\nmetrics_interval_s = 0.5",
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{folder / "local.jsonl"}"',
    )


def _send(client: mqtt.Client, verb: str, body: bytes, response_topic: str | None = None) -> None:
    properties = None
    if response_topic is not None:
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = response_topic
        properties.CorrelationData = b"c-1"
    client.publish(f"pdm/{DEVICE}/cmd/{verb}", body, qos=1, properties=properties).wait_for_publish(
        5
    )


def _stop(agent: subprocess.Popen) -> str:
    agent.send_signal(signal.SIGTERM)
    _, stderr = agent.communicate(timeout=20)
    return stderr


def test_hostile_commands_never_mute_the_device(broker: Broker, tmp_path: Path) -> None:
    """Test that a bad verb, a wildcard response topic and response topics aimed at a result or
    another device's command topic are refused with error replies, and that results keep
    arriving until more than twice the in-flight window has been delivered after them."""
    sub = Subscriber(broker, "#", client_id="test-all")
    agent = start_agent(_config(tmp_path, broker))
    operator = mqtt_client(broker, "test-operator", protocol=mqtt.MQTTv5)
    try:
        wait_until(lambda: sub.payloads("/result"), 30, "first result")
        _send(operator, "bad!verb", b"{}")
        _send(operator, "x y", b"{}")
        _send(operator, "status", b"{}", response_topic="x/#")
        _send(operator, "status", b"{}", response_topic=f"pdm/{DEVICE}/vibration-fault/result")
        _send(operator, "reload", b"{}", response_topic="pdm/other-device/cmd/reload")
        _send(operator, "status", b"{}", response_topic="replies/operator")
        wait_until(lambda: sub.payloads("replies/operator"), 20, "the valid reply")
        after = max(p["seq"] for p in sub.payloads("/result"))
        before = len(sub.payloads("/result"))
        wait_until(
            lambda: max(p["seq"] for p in sub.payloads("/result")) > after + 2 * INFLIGHT,
            40,
            "results beyond twice the in-flight window after the bad commands",
        )
        wait_until(
            lambda: (
                sub.payloads("/metrics")[-1]["sinks"]["MqttPublisher"].get(
                    "command:refused_response_topic", 0
                )
                == 3
            ),
            10,
            "refusals counted in metrics",
        )
    finally:
        operator.disconnect()
        operator.loop_stop()
        stderr = _stop(agent)
        sub.close()
    assert agent.returncode == 0, stderr
    assert "Traceback" not in stderr
    replies = sub.payloads(f"pdm/{DEVICE}/cmd/status/reply")
    refused = [r for r in replies if r["ok"] is False]
    assert len(refused) == 2 and all("response topic" in r["error"] for r in refused)
    for reply in replies + sub.payloads("replies/operator"):
        CommandReply.model_validate(reply)
    assert sub.payloads("replies/operator")[0]["ok"] is True
    # Nothing was ever published where the requests pointed.
    assert not [t for t, _, _ in sub.messages if t.startswith("pdm/other-device")]
    results = sub.payloads(f"pdm/{DEVICE}/vibration-fault/result")
    assert all(r.get("type") == "result" for r in results)
    metrics = sub.payloads("/metrics")[-1]["sinks"]["MqttPublisher"]
    assert metrics["command:invalid"] == 2 and metrics["connected"] is True
    assert not [k for k in metrics if k.startswith("command:") and "!" in k]
    assert StatusPayload.model_validate(sub.payloads("/status")[-1]).state == "offline"
    print(
        f"hostile commands: {before} results before them, {len(results) - before} after; "
        f"{metrics['command:refused_response_topic']} response topics refused, "
        f"{metrics['command:invalid']} invalid verbs"
    )


def test_reload_answers_with_its_outcome(broker: Broker, tmp_path: Path) -> None:
    """Test that `reload` replies only once the reload has run: an error naming the problem
    with the previous config kept, then ok listing the models after a good config."""
    config = _config(tmp_path, broker)
    good = config.read_text()
    sub = Subscriber(broker, f"pdm/{DEVICE}/#", client_id="test-reload")
    agent = start_agent(config)
    operator = mqtt_client(broker, "test-operator", protocol=mqtt.MQTTv5)
    try:
        wait_until(lambda: sub.payloads("/result"), 30, "first result")
        config.write_text(good.replace("vibration-fault", "no-such-bundle"))
        _send(operator, "reload", b"{}")
        wait_until(lambda: sub.payloads("/cmd/reload/reply"), 30, "the failed reload's reply")
        failed = sub.payloads("/cmd/reload/reply")[0]
        seq_before = max(p["seq"] for p in sub.payloads("/result"))
        wait_until(
            lambda: max(p["seq"] for p in sub.payloads("/result")) > seq_before,
            20,
            "results still flowing after the failed reload",
        )
        config.write_text(
            good.replace(
                '[[sinks]]\nkind = "jsonl"',
                f'[[models]]\nbundle = "{REPO_ROOT / "models/vibration-anomaly"}"\n'
                'source = "motor"\n[[sinks]]\nkind = "jsonl"',
                1,
            )
        )
        _send(operator, "reload", b"{}")
        wait_until(lambda: len(sub.payloads("/cmd/reload/reply")) >= 2, 30, "second reply")
        wait_until(lambda: sub.payloads("/vibration-anomaly/result"), 30, "the new model's result")
    finally:
        operator.disconnect()
        operator.loop_stop()
        stderr = _stop(agent)
        sub.close()
    assert failed["ok"] is False and "no-such-bundle" in failed["error"]
    assert failed["kept"] == "previous config kept"
    succeeded = sub.payloads("/cmd/reload/reply")[1]
    assert succeeded["ok"] is True
    assert succeeded["models"] == ["vibration-fault", "vibration-anomaly"]
    seqs = [p["seq"] for p in sub.payloads("/vibration-fault/result")]
    assert seqs == sorted(set(seqs)), "the sequence continues across the reload"
    assert "Traceback" not in stderr


def test_fault_then_positive_ack(broker: Broker, tmp_path: Path) -> None:
    """Test that the fault command switches the simulated machine (results change label and an
    alarm is raised), and that ack re-publishes the alarm marked acknowledged and replies so."""
    sub = Subscriber(broker, f"pdm/{DEVICE}/#", client_id="test-ack")
    agent = start_agent(_config(tmp_path, broker))
    operator = mqtt_client(broker, "test-operator", protocol=mqtt.MQTTv5)
    try:
        wait_until(lambda: sub.payloads("/result"), 30, "first result")
        _send(operator, "fault", orjson.dumps({"source": "motor", "fault": "bearing_outer"}))
        _send(operator, "fault", orjson.dumps({"source": "nope", "fault": "bearing_outer"}))
        wait_until(lambda: sub.payloads("/vibration-fault/alarm"), 40, "an alarm")
        _send(operator, "ack", orjson.dumps({"model": "vibration-fault", "by": "alice"}))
        wait_until(lambda: sub.payloads("/cmd/ack/reply"), 20, "ack reply")
        wait_until(
            lambda: any(a.get("acknowledged") for a in sub.payloads("/vibration-fault/alarm")),
            20,
            "the acknowledged alarm state",
        )
    finally:
        operator.disconnect()
        operator.loop_stop()
        _stop(agent)
        sub.close()
    faults = sub.payloads("/cmd/fault/reply")
    assert faults[0] == {"command": "fault", "ok": True}
    assert faults[1]["ok"] is False
    assert sub.payloads("/cmd/ack/reply")[0] == {"command": "ack", "ok": True, "acknowledged": True}
    acknowledged = [a for a in sub.payloads("/vibration-fault/alarm") if a.get("acknowledged")]
    assert acknowledged[0]["acknowledged_by"] == "alice" and acknowledged[0]["state"] == "raised"
    labels = [r["label"] for r in sub.payloads("/vibration-fault/result")]
    assert labels[0] == "healthy" and labels[-1] == "bearing_outer"
    local = [e for e in read_jsonl(tmp_path / "local.jsonl") if e["type"] == "alarm"]
    assert local and local[0]["state"] == "raised"
    for event in sub.payloads("/health/event"):
        HealthEvent.model_validate(event)
