"""The consumer helper and `edge-agent watch`: validation, de-duplication, gap detection."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from edge_agent.config.mqtt import MqttConfig
from edge_agent.mqtt.consumer import ContractError, ResultTracker
from edge_agent.mqtt.watch import Watcher
from tests.conftest import Broker, agent_config, mqtt_client, run_cli, start_agent, wait_until


def _result(seq: int) -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "type": "result",
            "device": "d1",
            "model": {"id": "m", "name": "m", "version": "1.0.0", "sha256": "0" * 64},
            "seq": seq,
            "window": {"start": 1.0, "end": 2.0},
            "published_at": 3.0,
            "task": "rul",
            "rul": 50.0,
            "units": "cycles",
            "latency_ms": 0.1,
            "historical": False,
        }
    )


def test_tracker_drops_duplicates_and_reports_gaps() -> None:
    """Test that a repeated seq is dropped and counted, and missing seqs are listed."""
    tracker = ResultTracker()
    accepted = [tracker.accept("pdm/d1/m/result", _result(s)) for s in (1, 2, 2, 5)]
    assert [a is not None for a in accepted] == [True, True, False, True]
    assert tracker.counters["duplicates"] == 1 and tracker.counters["results"] == 3
    assert tracker.missing("d1", "m") == [3, 4]


def test_tracker_rejects_payloads_off_contract() -> None:
    """Test that a result missing fields or with unknown ones is a ContractError."""
    tracker = ResultTracker()
    bad = orjson.loads(_result(1))
    bad["colour"] = "red"
    with pytest.raises(ContractError, match="colour"):
        tracker.accept("pdm/d1/m/result", orjson.dumps(bad))
    with pytest.raises(ContractError):
        tracker.accept("pdm/d1/m/result", b"{")
    assert tracker.counters["invalid"] == 2


def test_watch_shows_live_results(broker: Broker, tmp_path: Path) -> None:
    """Test that the watch table shows the device online with its model's latest result."""
    config = agent_config(
        tmp_path,
        "press7",
        '[[sources]]\nkind = "simulator"\nid = "motor"\nfault = "misalignment"',
        [("vibration-fault", "motor")],
        broker_port=broker.port,
        mqtt_sink=True,
    )
    watcher = Watcher(MqttConfig(host="127.0.0.1", port=broker.port))
    watcher.client.loop_start()
    agent = start_agent(config, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "misalignment" in watcher.table(), 30, "a result in the table")
        wait_until(lambda: "raised" in watcher.table(), 30, "the alarm in the table")
        live = watcher.table()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
        wait_until(lambda: "offline" in watcher.table(), 15, "the clean shutdown's status")
    finally:
        agent.kill()
        watcher.client.loop_stop()
    assert "press7" in live and "online" in live and "vibration-fault" in live


def test_shared_subscription_splits_results_between_consumers(
    broker: Broker, tmp_path: Path
) -> None:
    """Test that two members of a $share group together get every result, each exactly once."""
    import threading

    import paho.mqtt.client as mqtt

    received: list[list[int]] = [[], []]
    ready = threading.Barrier(3)
    clients = []
    for index in range(2):
        client = mqtt_client(
            broker,
            f"consumer-{index}",
            protocol=mqtt.MQTTv5,
            on_connect=lambda c, *_: c.subscribe("$share/g/pdm/+/+/result", qos=1),
            on_subscribe=lambda *_: ready.wait(10),
            on_message=(
                lambda i: lambda _c, _u, m: received[i].append(orjson.loads(m.payload)["seq"])
            )(index),
        )
        clients.append(client)
    ready.wait(10)
    config = agent_config(
        tmp_path,
        "line2",
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = false\nduration_s = 3',
        [("vibration-fault", "motor")],
        broker_port=broker.port,
        mqtt_sink=True,
    )
    result = run_cli("run", "-c", str(config), timeout=60)
    assert result.returncode == 0
    expected = (3 * 25600 - 8192) // 4096 + 1
    wait_until(lambda: len(received[0]) + len(received[1]) >= expected, 15, "all results")
    for client in clients:
        client.disconnect()
        client.loop_stop()
    assert sorted(received[0] + received[1]) == list(range(1, expected + 1))
    assert received[0] and received[1]
