"""Delivery over MQTT against a real Mosquitto: birth and Last Will, broker outages, SIGKILL of
the agent mid-outage, and commands. Messages are counted, not log lines."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import orjson
import pytest

from edge_agent.mqtt.contract import CommandReply, MetricsPayload, ResultPayload, StatusPayload
from tests.conftest import (
    Broker,
    Subscriber,
    agent_config,
    mqtt_client,
    read_jsonl,
    run_cli,
    start_agent,
    wait_for_more,
    wait_until,
)

DEVICE = "rig1"


def _config(folder: Path, broker: Broker, protocol: str = "5") -> Path:
    """A simulator at real time, results to the broker through the spool and to a local file."""
    return agent_config(
        folder,
        DEVICE,
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true',
        [("vibration-fault", "motor")],
        broker_port=broker.port,
        mqtt_options=f'reconnect_min_s = 1\nreconnect_max_s = 1\nprotocol = "{protocol}"',
        mqtt_sink=True,
        sink_options="metrics_interval_s = 0.5",
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{folder / "local.jsonl"}"',
    )


def _produced(folder: Path) -> list[int]:
    return [e["seq"] for e in read_jsonl(folder / "local.jsonl") if e["type"] == "result"]


def _received(sub: Subscriber) -> list[int]:
    return [p["seq"] for p in sub.payloads("/vibration-fault/result")]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_birth_results_metrics_and_last_will(broker: Broker, tmp_path: Path, protocol: str) -> None:
    """Test retained birth on connect, ordered results, metrics, and the Will on kill -9."""
    sub = Subscriber(broker, f"pdm/{DEVICE}/#")
    agent = start_agent(_config(tmp_path, broker, protocol))
    try:
        wait_until(lambda: len(_received(sub)) >= 3, 30, "three results")
        wait_until(lambda: sub.payloads("/metrics"), 10, "a metrics message")
        births = sub.payloads("/status")
        StatusPayload.model_validate(births[0])
        MetricsPayload.model_validate(sub.payloads("/metrics")[0])
        for payload in sub.payloads("/result"):
            ResultPayload.model_validate(payload)
        assert births[0]["state"] == "online" and births[0]["models"][0]["id"] == "vibration-fault"
        result = sub.payloads("/vibration-fault/result")[0]
        assert result["device"] == DEVICE and result["seq"] == 1 and result["historical"] is False
        assert result["published_at"] >= result["window"]["end"]
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        wait_until(lambda: sub.payloads("/status")[-1]["state"] == "offline", 15, "Last Will")
        StatusPayload.model_validate(sub.payloads("/status")[-1])
    finally:
        agent.kill()
        sub.close()
    assert _received(sub) == sorted(set(_received(sub)))


def test_broker_outage_loses_nothing(durable_broker: Broker, tmp_path: Path) -> None:
    """Test that every result produced while the broker is down arrives after it restarts."""
    sub = Subscriber(durable_broker, f"pdm/{DEVICE}/+/result")
    agent = start_agent(_config(tmp_path, durable_broker))
    try:
        wait_until(lambda: len(_received(sub)) >= 3, 30, "results before the outage")
        durable_broker.stop()
        before = wait_for_more(lambda: len(_produced(tmp_path)), 12, 30, "results during outage")
        durable_broker.start()
        wait_until(
            lambda: set(_produced(tmp_path)[: before + 12]) <= set(_received(sub)),
            30,
            "every result produced during the outage",
        )
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0
    finally:
        agent.kill()
        sub.close()
    received = _received(sub)
    produced = _produced(tmp_path)
    assert set(produced) <= set(received), sorted(set(produced) - set(received))
    historical = [p for p in sub.payloads("/result") if p["historical"]]
    assert historical, "results spooled during the outage are marked historical"
    print(f"duplicates: {len(received) - len(set(received))}")


def test_sigkill_mid_outage_then_restart(durable_broker: Broker, tmp_path: Path) -> None:
    """Test that results spooled before a kill -9 are delivered by the restarted agent."""
    sub = Subscriber(durable_broker, f"pdm/{DEVICE}/+/result")
    config = _config(tmp_path, durable_broker)
    agent = start_agent(config)
    try:
        wait_until(lambda: len(_received(sub)) >= 2, 30, "results before the outage")
        durable_broker.stop()
        wait_for_more(lambda: len(_produced(tmp_path)), 8, 30, "results during outage")
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        spooled = _produced(tmp_path)
        durable_broker.start()
        agent = start_agent(config)
        wait_until(lambda: set(spooled) <= set(_received(sub)), 40, "every spooled result")
        wait_until(lambda: max(_received(sub)) > max(spooled), 30, "new results after restart")
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
    finally:
        agent.kill()
        sub.close()
    received = _received(sub)
    # The restarted agent continues the sequence instead of reusing numbers.
    assert len([s for s in received if s == 1]) == 1


def test_commands_status_ack_and_unknown(broker: Broker, tmp_path: Path) -> None:
    """Test that status, ack and an unknown command each get a reply on the reply topic."""
    sub = Subscriber(broker, f"pdm/{DEVICE}/cmd/+/reply", client_id="test-cmd")
    agent = start_agent(_config(tmp_path, broker))
    try:
        birth = Subscriber(broker, f"pdm/{DEVICE}/status", client_id="test-birth")
        wait_until(lambda: birth.payloads("/status"), 30, "birth")
        birth.close()
        client = mqtt_client(broker, "test-operator")
        for verb, body in (("status", {}), ("ack", {"model": "nope"}), ("explode", {})):
            client.publish(f"pdm/{DEVICE}/cmd/{verb}", orjson.dumps(body), qos=1).wait_for_publish(
                5
            )
        wait_until(lambda: len(sub.payloads("/reply")) >= 3, 20, "three replies")
        client.disconnect()
        client.loop_stop()
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
        sub.close()
    replies = {r["command"]: r for r in sub.payloads("/reply")}
    for reply in replies.values():
        CommandReply.model_validate(reply)
    assert replies["status"]["ok"] is True and replies["status"]["status"]["device"] == DEVICE
    assert replies["ack"] == {"command": "ack", "ok": False, "error": "unknown model 'nope'"}
    assert replies["explode"]["ok"] is False
    # One spool per device and broker, named so an operator can tell them apart.
    assert [p.name.split("-")[0] for p in (tmp_path / "spool").glob("*.sqlite3")] == [
        f"{DEVICE}@127.0.0.1_{broker.port}"
    ]


def test_spool_cap_during_long_outage_keeps_alarms(durable_broker: Broker, tmp_path: Path) -> None:
    """Test that a full spool drops the oldest results, keeps the alarm, and reports the drops."""
    config = agent_config(
        tmp_path,
        DEVICE,
        # As fast as possible: the smallest spool (0.5 MB on disk) fills within seconds.
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = false\n'
        'schedule = [{ at_s = 3.0, fault = "bearing_outer" }]',
        [("vibration-fault", "motor")],
        broker_port=durable_broker.port,
        mqtt_options="reconnect_min_s = 1\nreconnect_max_s = 1",
        mqtt_sink=True,
        sink_options="spool_max_mb = 0.5\nmetrics_interval_s = 0.5",
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{tmp_path / "local.jsonl"}"',
    )
    sub = Subscriber(durable_broker, f"pdm/{DEVICE}/#")
    agent = start_agent(config)
    try:
        wait_until(lambda: len(_received(sub)) >= 2, 30, "results before the outage")
        durable_broker.stop()

        def local(kind: str) -> list[dict]:
            return [e for e in read_jsonl(tmp_path / "local.jsonl") if e["type"] == kind]

        wait_until(
            lambda: local("alarm") and len(local("result")) >= len(_received(sub)) + 2000,
            40,
            "an alarm and 2000 results (about 1.2 MB) during the outage",
        )
        durable_broker.start()
        wait_until(lambda: sub.payloads("/alarm"), 20, "the alarm after the outage")
        wait_until(
            lambda: any(
                m.get("sinks", {}).get("MqttPublisher", {}).get("dropped_full_oldest", 0) > 0
                for m in sub.payloads("/metrics")
            ),
            20,
            "drops reported in metrics",
        )
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
    finally:
        agent.kill()
        sub.close()
    produced = [e["seq"] for e in local("result")]
    received = set(_received(sub))
    lost = sorted(set(produced) - received)
    assert lost, "the cap forced drops"
    assert max(produced) in received  # the newest survive, the oldest go first
    assert sub.payloads("/alarm")[0]["state"] == "raised"


def _cmapss_rows(path: Path, cmapss_dir: Path, engines: int) -> int:
    """Real C-MAPSS rows, engines back to back with a per-row clock: one window per row."""
    from training.datasets.cmapss import SENSORS, load_engines

    rows = np.concatenate([e.values for e in load_engines(cmapss_dir, "FD001", "train")[:engines]])
    ts = 1_700_000_000.0 + np.arange(len(rows))
    np.savez(path, ts=ts, **{name: rows[:, i] for i, name in enumerate(SENSORS)})
    return len(rows)


def test_finite_replay_waits_for_every_acknowledgement(
    broker: Broker, tmp_path: Path, cmapss_dir: Path
) -> None:
    """Test that a replay producing results far faster than they can be delivered exits only
    once the broker has acknowledged every one (within shutdown_timeout_s), and says so."""
    rows = _cmapss_rows(tmp_path / "engines.npz", cmapss_dir, engines=80)
    config = agent_config(
        tmp_path,
        DEVICE,
        f'[[sources]]\nkind = "replay"\nid = "engine"\npath = "{tmp_path / "engines.npz"}"',
        [("cmapss-fd001-rul", "engine")],
        broker_port=broker.port,
        mqtt_sink=True,
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{tmp_path / "local.jsonl"}"',
    )
    config.write_text(
        config.read_text().replace("shutdown_timeout_s = 5", "shutdown_timeout_s = 120")
    )
    sub = Subscriber(broker, f"pdm/{DEVICE}/cmapss-fd001-rul/result")
    try:
        done = run_cli("run", "-c", str(config), timeout=180)
        produced = [e["seq"] for e in read_jsonl(tmp_path / "local.jsonl") if e["type"] == "result"]
        wait_until(lambda: len(sub.payloads("/result")) >= len(produced), 30, "every result")
    finally:
        sub.close()
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(produced) > rows - 80 * 40  # at least one window per row past each start
    assert {p["seq"] for p in sub.payloads("/result")} == set(produced)
    stopped = [json.loads(x) for x in done.stderr.splitlines() if '"publisher stopped"' in x]
    assert stopped and stopped[0]["undelivered"] == 0, stopped


def test_another_broker_gets_a_fresh_spool_and_no_old_backlog(
    durable_broker: Broker, broker: Broker, tmp_path: Path
) -> None:
    """Test that a backlog spooled for one broker is kept for it, never delivered to another
    broker the agent is pointed at next, and that the start says so."""
    first = _config(tmp_path, durable_broker)
    agent = start_agent(first)
    try:
        wait_until(lambda: len(_produced(tmp_path)) >= 2, 30, "results")
        durable_broker.stop()
        wait_for_more(lambda: len(_produced(tmp_path)), 5, 30, "a backlog")
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=20)
    finally:
        agent.kill()
    (tmp_path / "local.jsonl").unlink()
    second = tmp_path / "second.toml"
    second.write_text(
        first.read_text().replace(f"port = {durable_broker.port}", f"port = {broker.port}")
    )
    sub = Subscriber(broker, f"pdm/{DEVICE}/+/result", client_id="test-second")
    agent = start_agent(second)
    try:
        wait_until(lambda: len(_received(sub)) >= 3, 30, "results at the second broker")
    finally:
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=20)
        sub.close()
    results = sub.payloads("/result")
    assert not [r for r in results if r["historical"]], "no old backlog at the new broker"
    assert min(r["seq"] for r in results) == 1  # its own sequence, not the old one's
    opened = next(json.loads(x) for x in stderr.splitlines() if '"spool opened"' in x)
    assert opened["broker"] == f"127.0.0.1:{broker.port}" and opened["backlog"] == 0
    assert opened["kept_for_other_brokers"] == [
        p.name for p in (tmp_path / "spool").glob(f"*{durable_broker.port}*")
    ]
