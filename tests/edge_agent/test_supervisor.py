"""The supervisor, with the agent in this process against a real Mosquitto: paho's network
thread ended by a callback bug, a broker that stops acknowledging (SIGSTOP), a driver that
crashes, and an input that goes idle. Each is recovered or reported, and nothing is lost."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import orjson
import pytest

from edge_agent.agent import Agent
from edge_agent.config import load_agent_config
from edge_agent.mqtt.contract import HealthEvent
from edge_agent.mqtt.publisher import MqttPublisher
from edge_agent.sim.vibration import CHANNELS, MachineConditions, VibrationSimulator
from edge_agent.sources.payloads import encode_binary
from edge_agent.stream.blocks import SampleBlock
from tests.conftest import (
    Broker,
    Subscriber,
    agent_config,
    agent_thread,
    mqtt_client,
    read_jsonl,
    register_plugin,
    wait_until,
)

DEVICE = "sup1"


def _agent(folder: Path, broker: Broker, sources: str, sink_options: str = "") -> Agent:
    config = agent_config(
        folder,
        DEVICE,
        sources,
        [("vibration-fault", "motor")],
        broker_port=broker.port,
        mqtt_options="reconnect_min_s = 1\nreconnect_max_s = 1",
        mqtt_sink=True,
        sink_options=f"inflight = 8\nmetrics_interval_s = 0.5\n{sink_options}",
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{folder / "local.jsonl"}"\n'
        "[supervisor]\ncheck_interval_s = 0.2\nidle_after_s = 1.5\nrestart_max_s = 1",
    )
    return Agent(load_agent_config(config))


def _stop(agent: Agent, thread: threading.Thread) -> None:
    agent.stop_event.set()
    thread.join(timeout=20)
    assert not thread.is_alive()


def _produced(folder: Path) -> set[int]:
    return {e["seq"] for e in read_jsonl(folder / "local.jsonl") if e["type"] == "result"}


def _received(sub: Subscriber) -> set[int]:
    return {p["seq"] for p in sub.payloads("/vibration-fault/result")}


SIMULATOR = '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true\nblock_samples = 2048'


def _publisher(agent: Agent) -> MqttPublisher:
    return next(s for s in agent.sinks if isinstance(s, MqttPublisher))


def test_network_thread_killed_by_a_callback_is_replaced(broker: Broker, tmp_path: Path) -> None:
    """Test that when a callback bug escapes into paho (bypassing the boundary) and ends its
    network thread, the supervisor connects a new client and every result is delivered."""
    sub = Subscriber(broker, f"pdm/{DEVICE}/#")
    agent = _agent(tmp_path, broker, SIMULATOR)
    thread = agent_thread(agent)
    try:
        wait_until(lambda: len(_received(sub)) >= 2, 30, "results before the fault")
        publisher = _publisher(agent)
        broken = publisher._client

        def bug(*_args: object) -> None:
            raise ZeroDivisionError("callback bug")

        broken.on_publish = bug  # straight into paho: the next PUBACK ends its thread
        started = time.monotonic()
        wait_until(lambda: publisher.counters["recoveries"] >= 1, 20, "a recovery")
        recovered_after = time.monotonic() - started
        assert publisher._client is not broken
        mark = max(_produced(tmp_path))
        wait_until(lambda: max(_received(sub), default=0) > mark + 3, 30, "results after it")
    finally:
        _stop(agent, thread)
        sub.close()
    assert agent.counters["thread_crashes"] >= 1
    assert _produced(tmp_path) <= _received(sub), sorted(_produced(tmp_path) - _received(sub))
    print(
        f"network thread killed: new client after {recovered_after:.2f} s; "
        f"{len(_produced(tmp_path))} produced, all delivered"
    )


def test_broker_that_stops_acknowledging_is_detected_and_recovered(
    broker: Broker, tmp_path: Path
) -> None:
    """Test that a broker frozen with SIGSTOP (connection open, no PUBACK) makes the agent
    degraded within the stall timeout, that a new connection is made, and that after SIGCONT
    everything produced meanwhile is delivered."""
    sub = Subscriber(broker, f"pdm/{DEVICE}/#")
    agent = _agent(tmp_path, broker, SIMULATOR, "stall_timeout_s = 1.5")
    thread = agent_thread(agent)
    try:
        wait_until(lambda: len(_received(sub)) >= 2, 30, "results before the freeze")
        assert broker.process is not None
        os.kill(broker.process.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            wait_until(lambda: _publisher(agent).counters["recoveries"] >= 1, 20, "stall detected")
            detected_after = time.monotonic() - frozen
            # The recovery is counted a moment before the health is set, on the same thread.
            wait_until(lambda: agent.counters["degraded"] >= 1, 10, "degraded")
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        mark = max(_produced(tmp_path))
        wait_until(
            lambda: _produced(tmp_path) and max(_received(sub), default=0) > mark,
            40,
            "results after the broker resumed",
        )
        wait_until(lambda: agent.health.state == "online", 20, "back online")
        wait_until(
            lambda: _produced(tmp_path) - _received(sub) == set() or max(_received(sub)) > mark + 5,
            30,
            "backlog delivered",
        )
    finally:
        _stop(agent, thread)
        sub.close()
    missing = sorted(_produced(tmp_path) - _received(sub))
    assert not missing, missing
    print(
        f"broker frozen: stall detected and client replaced {detected_after:.2f} s after "
        f"SIGSTOP (stall_timeout_s 1.5); {len(_produced(tmp_path))} produced, all delivered"
    )
    events = [HealthEvent.model_validate(e) for e in sub.payloads("/health/event")]
    assert any("stalled" in " ".join(e.reasons) for e in events)
    assert events[-1].state == "online"


def test_crashed_driver_is_restarted_and_reported(
    broker: Broker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Test that a source driver raising mid-stream is restarted with backoff, the restart is
    counted and logged, and results flow again."""
    register_plugin(monkeypatch, "flaky", "tests.edge_agent.sources.fake_driver:make_flaky")
    agent = _agent(
        tmp_path,
        broker,
        '[[sources]]\nkind = "plugin"\nid = "motor"\nplugin = "flaky"\n'
        "options = { crash_after = 30 }",
    )
    caplog.set_level(logging.INFO, "edge_agent")
    thread = agent_thread(agent)
    try:
        wait_until(lambda: agent.sources.slots[0].restarts >= 1, 30, "a restart")
        mark = max(_produced(tmp_path), default=0)
        wait_until(lambda: max(_produced(tmp_path), default=0) > mark + 3, 30, "results again")
        assert agent.stats()["sources"]["motor"]["restarts"] == 1
    finally:
        _stop(agent, thread)
    messages = [r.getMessage() for r in caplog.records]
    assert "source stopped; restarting" in messages and "source restarted" in messages
    stopped = next(r for r in caplog.records if r.getMessage() == "source stopped; restarting")
    assert "driver bug" in stopped.error  # type: ignore[attr-defined]


def test_idle_input_is_reported_per_source_not_degraded(broker: Broker, tmp_path: Path) -> None:
    """Test that an MQTT input nobody publishes to is 'idle' in metrics while the agent stays
    online."""
    sub = Subscriber(broker, f"pdm/{DEVICE}/#")
    agent = _agent(
        tmp_path, broker, '[[sources]]\nkind = "mqtt"\nid = "motor"\ntopic = "plant/motor"'
    )
    thread = agent_thread(agent)
    try:
        wait_until(
            lambda: any(m["sources"]["motor"]["state"] == "idle" for m in sub.payloads("/metrics")),
            20,
            "the source reported idle",
        )
    finally:
        _stop(agent, thread)
        sub.close()
    assert agent.counters["degraded"] == 0
    assert all(m["state"] == "online" for m in sub.payloads("/metrics"))
    assert [s["state"] for s in sub.payloads("/status")][:1] == ["online"]


def test_samples_that_form_no_window_degrade_until_they_do(broker: Broker, tmp_path: Path) -> None:
    """Test that an input whose blocks lack the model's channels makes the agent degraded with
    that reason, and that good blocks bring it back online."""
    sub = Subscriber(broker, f"pdm/{DEVICE}/#")
    agent = _agent(
        tmp_path, broker, '[[sources]]\nkind = "mqtt"\nid = "motor"\ntopic = "plant/motor"'
    )
    thread = agent_thread(agent)
    sensor = mqtt_client(broker, "test-sensor")
    try:
        wait_until(agent.sources.slots[0].source.connected.is_set, 10, "subscription")
        t0 = time.time() - 10
        for i in range(8):
            block = {"ts": t0 + i * 0.08, "rate_hz": 25600, "values": {"x": [0.1] * 2048}}
            sensor.publish("plant/motor", orjson.dumps(block), qos=1).wait_for_publish(5)
        wait_until(lambda: agent.health.state == "degraded", 20, "degraded")
        assert agent.health.reasons == (
            "model vibration-fault: samples arrive but no window forms (missing channels)",
        )
        sim = VibrationSimulator(MachineConditions(fault="healthy"), 25600.0, seed=1)
        for i in range(8):
            block = SampleBlock(
                "motor", CHANNELS, sim.next_block(2048), t0 + 1 + i * 0.08, rate_hz=25600.0, seq=i
            )
            sensor.publish("plant/motor", encode_binary(block), qos=1).wait_for_publish(5)
        wait_until(lambda: agent.health.state == "online", 20, "online again")
        wait_until(lambda: len(sub.payloads("/health/event")) >= 2, 10, "both health events")
    finally:
        sensor.disconnect()
        sensor.loop_stop()
        _stop(agent, thread)
        sub.close()
    events = [HealthEvent.model_validate(e) for e in sub.payloads("/health/event")]
    assert [(e.state, e.severity) for e in events] == [("degraded", "critical"), ("online", "info")]
    assert "missing channels" in events[0].reasons[0]
