"""Input health over a real Mosquitto: a replayed recording whose sensor freezes gives a
retained per-model state and one event naming the channel, and the next run replaces it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from edge_agent.mqtt.consumer import parse
from edge_agent.mqtt.contract import InputHealthPayload
from edge_agent.mqtt.watch import describe_inputs
from edge_agent.sim.vibration import generate, random_conditions
from tests.conftest import Broker, Subscriber, agent_config, start_agent, wait_until

RATE = 25600
BASE = "pdm/line-4/vibration-anomaly"


def write_recording(path: Path, stuck_from_s: float | None) -> Path:
    """12 s of a healthy simulated machine as NPZ; `ay` frozen from `stuck_from_s` on."""
    values = generate(random_conditions(np.random.default_rng(3), "healthy"), 12 * RATE, seed=3)
    if stuck_from_s is not None:
        at = int(stuck_from_s * RATE)
        values[at:, 1] = values[at, 1]
    ts = 1_750_000_000.0 + np.arange(len(values)) / RATE
    np.savez(path, ts=ts, ax=values[:, 0], ay=values[:, 1], az=values[:, 2])
    return path


def replay(tmp_path: Path, broker: Broker, recording: Path) -> None:
    source = f'[[sources]]\nkind = "replay"\nid = "motor"\npath = "{recording}"'
    config = agent_config(
        tmp_path,
        "line-4",
        source,
        [("vibration-anomaly", "motor")],
        broker_port=broker.port,
        mqtt_sink=True,
    )
    agent = start_agent(config, stderr=subprocess.PIPE)
    _, stderr = agent.communicate(timeout=120)
    assert agent.returncode == 0, stderr


def test_frozen_sensor_is_published_retained_and_replaced_on_the_next_run(
    broker: Broker, tmp_path: Path
) -> None:
    """Test the stuck `ay` channel: a retained healthy state at the start, one `stuck` event
    for ay (schema-valid, retained state listing it), and a later healthy run's retained state
    replacing it for a subscriber that arrives afterwards."""
    watcher = Subscriber(broker, f"{BASE}/input/#", client_id="input-watch")
    replay(tmp_path, broker, write_recording(tmp_path / "stuck.npz", stuck_from_s=5.0))
    wait_until(lambda: watcher.payloads("/input/event"), 10, "the input event")
    states = [InputHealthPayload.model_validate(p) for p in watcher.payloads("/input")]
    events = [InputHealthPayload.model_validate(p) for p in watcher.payloads("/input/event")]
    watcher.close()
    assert states[0].change is None and states[0].healthy
    assert [(e.change.channel, e.change.condition, e.change.state) for e in events] == [  # type: ignore[union-attr]
        ("ay", "stuck", "raised")
    ]
    assert events[0].channels == {"ax": [], "ay": ["stuck"], "az": []}
    assert events[0].window_end >= 1_750_000_005.0  # not before the sensor froze
    assert states[-1] == events[0]  # the retained topic carries the latest state
    with watcher.lock:
        topic, payload, _ = watcher.messages[-1]
    message = parse(topic, payload)  # what `edge-agent watch` and consumers read
    assert message.kind == "input_health" and message.model == "vibration-anomaly"
    assert describe_inputs(message.payload.channels) == "ay stuck"  # type: ignore[union-attr]

    replay(tmp_path, broker, write_recording(tmp_path / "healthy.npz", stuck_from_s=None))
    late = Subscriber(broker, f"{BASE}/input", client_id="late-input")
    wait_until(lambda: late.payloads("/input"), 10, "the retained input state")
    retained = InputHealthPayload.model_validate(late.payloads("/input")[-1])
    late.close()
    assert retained.healthy and retained.change is None
