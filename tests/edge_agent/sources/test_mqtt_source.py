"""MQTT input against a real Mosquitto: good rows interleaved with garbage still give the right
results, and every rejection is counted by reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from edge_agent.agent import Agent
from edge_agent.config import load_agent_config
from edge_agent.runtime import load_model
from tests.conftest import (
    REPO_ROOT,
    Broker,
    agent_config,
    agent_thread,
    mqtt_client,
    read_jsonl,
    wait_until,
)
from training.datasets.cmapss import SENSORS, load_engines

BUNDLE = REPO_ROOT / "models/cmapss-fd001-rul"


def test_rows_with_garbage_interleaved(broker: Broker, tmp_path: Path, cmapss_dir: Path) -> None:
    """Test that 50 good rows among malformed messages give the 11 windows' exact RUL values."""
    config_path = agent_config(
        tmp_path,
        "rig",
        '[[sources]]\nkind = "mqtt"\nid = "engine"\ntopic = "plant/engine/+"',
        [("cmapss-fd001-rul", "engine")],
        broker_port=broker.port,
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{tmp_path / "out.jsonl"}"',
    )
    agent = Agent(load_agent_config(config_path))
    runner = agent_thread(agent)
    source = agent.sources.slots[0].source
    wait_until(source.connected.is_set, 10, "agent subscription")

    engine = load_engines(cmapss_dir, "FD001", "test")[30]
    rows = engine.values[:50]
    garbage = [
        b"\x00\xff",
        b'{"ts": "soon"}',
        b"[]",
        b'{"ts": 1732440000, "s2": "x"}',
        orjson.dumps({"ts": 1732440000.5, "s2": 1.0}),
    ]
    publisher = mqtt_client(broker, "test-pub")
    for i, row in enumerate(rows):
        message = {"ts": 1_732_440_000.0 + i, **dict(zip(SENSORS, row.tolist()))}
        publisher.publish("plant/engine/7", orjson.dumps(message), qos=1).wait_for_publish(5)
        if i % 10 == 3:
            for bad in garbage:
                publisher.publish("plant/engine/7", bad, qos=1).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()

    out = tmp_path / "out.jsonl"

    def results() -> list[dict]:
        return [e for e in read_jsonl(out) if e["type"] == "result"]

    wait_until(lambda: len(results()) >= 11, 20, "11 results")
    agent.stop_event.set()
    runner.join(timeout=15)

    got = results()
    assert [r["seq"] for r in got] == list(range(1, 12))
    model = load_model(BUNDLE)
    pipeline = model.manifest.input.pipeline()
    expected = [max(float(model.predict(pipeline(rows[i : i + 40]))[0]), 0.0) for i in range(11)]
    np.testing.assert_allclose([r["rul"] for r in got], expected, rtol=0, atol=1e-6)
    counters = source.counters
    assert counters["rejected:bad_json"] == 5  # b"\x00\xff" five times
    assert counters["rejected:bad_timestamp"] == 5
    assert counters["rejected:bad_shape"] == 5
    assert counters["rejected:bad_value"] == 5
    # A row lacking 13 of the 14 sensors is valid JSON but unusable: the windower counts it.
    assert agent.pipelines[0].windower.counters["missing_channels"] == 5
