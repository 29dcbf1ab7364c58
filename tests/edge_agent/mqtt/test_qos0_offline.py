"""`qos0_offline = "spool"`: metrics made while the broker is down are kept and delivered after it
returns, against a real Mosquitto that is stopped and restarted."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from edge_agent.mqtt.contract import MetricsPayload
from tests.conftest import (
    Broker,
    Subscriber,
    agent_config,
    read_jsonl,
    start_agent,
    wait_for_more,
    wait_until,
)

DEVICE = "rig1"
INTERVAL = 0.3  # metrics_interval_s


@pytest.fixture
def queueing_broker(tmp_path: Path):
    """A persistent Mosquitto that also queues QoS 0 messages for an offline durable subscriber,
    so the test's subscriber cannot miss spooled metrics sent before it has reconnected."""
    (tmp_path / "broker").mkdir()
    instance = Broker(tmp_path / "broker", persistence=True, listeners="queue_qos0_messages true")
    instance.start()
    yield instance
    instance.stop()


def _results(folder: Path) -> int:
    return sum(e["type"] == "result" for e in read_jsonl(folder / "local.jsonl"))


def test_metrics_spooled_while_offline_arrive_after_the_outage(
    queueing_broker: Broker, tmp_path: Path
) -> None:
    """Test that metrics made during an outage are delivered afterwards, marked historical."""
    config = agent_config(
        tmp_path,
        DEVICE,
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true',
        [("vibration-fault", "motor")],
        broker_port=queueing_broker.port,
        mqtt_options="reconnect_min_s = 1\nreconnect_max_s = 1",
        mqtt_sink=True,
        sink_options=f'metrics_interval_s = {INTERVAL}\nqos0_offline = "spool"',
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{tmp_path / "local.jsonl"}"',
    )
    sub = Subscriber(queueing_broker, f"pdm/{DEVICE}/metrics", client_id="test-metrics")
    agent = start_agent(config)
    try:
        wait_until(lambda: sub.payloads("/metrics"), 30, "metrics while connected")
        down_at = time.time()  # the broker closes its connections before stop() returns
        queueing_broker.stop()
        # The agent keeps working through the outage: 8 more results is about 1.3 s, several
        # metrics intervals.
        wait_for_more(lambda: _results(tmp_path), 8, 30, "results during the outage")
        up_at = time.time()
        queueing_broker.start()

        def spooled() -> list[dict]:
            """Metrics sent from the spool after the outage (a start-up one made before the
            first connect is also sent from the spool: it is not counted here)."""
            return [
                m
                for m in sub.payloads("/metrics")
                if m.get("historical") is True and m["published_at"] >= up_at
            ]

        wait_until(lambda: len(spooled()) >= 3, 30, "metrics spooled during the outage")
        wait_until(
            lambda: any(
                m["ts"] > up_at and "historical" not in m for m in sub.payloads("/metrics")
            ),
            30,
            "live metrics after the outage",
        )
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
    finally:
        agent.kill()
        sub.close()
    kept = spooled()
    live = [m for m in sub.payloads("/metrics") if "historical" not in m and m["ts"] > up_at]
    reconnected_by = min(m["ts"] for m in live)  # the first metrics published live again
    for message in kept:
        MetricsPayload.model_validate(message)
        # Made while the broker was down (the publisher knew it), sent after it came back.
        assert down_at <= message["ts"] <= reconnected_by, (down_at, message["ts"])
        assert message["sinks"]["MqttPublisher"]["connected"] is False
    stamps = [m["ts"] for m in kept]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # Spooled, not dropped: the live metrics after the outage count no offline drops.
    assert live[-1]["sinks"]["MqttPublisher"].get("metrics_dropped_offline", 0) == 0
