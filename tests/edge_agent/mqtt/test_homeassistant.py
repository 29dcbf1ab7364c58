"""Home Assistant discovery against a real Mosquitto: one retained device config with entities
from each model's manifest, availability on the status topic, re-sent when HA comes online."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.conftest import Broker, Subscriber, agent_config, mqtt_client, start_agent, wait_until


def test_discovery_published_and_repeated_on_ha_birth(broker: Broker, tmp_path: Path) -> None:
    """Test the discovery payload's entities and its re-publication on homeassistant/status."""
    sources = (
        '[[sources]]\nkind = "simulator"\nid = "motor"\n'
        f'[[sources]]\nkind = "replay"\nid = "engine"\npath = "{tmp_path / "engine.csv"}"'
    )
    config = agent_config(
        tmp_path,
        "press-9",
        sources,
        [("vibration-anomaly", "motor"), ("cmapss-fd001-rul", "engine")],
        broker_port=broker.port,
        mqtt_sink=True,
        sink_options="homeassistant = true",
    )
    (tmp_path / "engine.csv").write_text(
        "ts,"
        + ",".join(f"s{i}" for i in (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21))
        + "\n1,"
        + ",".join(["1.0"] * 14)
        + "\n"
    )
    ha = Subscriber(broker, "homeassistant/device/#", client_id="fake-ha")
    agent = start_agent(config, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: ha.payloads("/config"), 30, "discovery config")
        announcer = mqtt_client(broker, "ha-birth")
        announcer.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        wait_until(lambda: len(ha.payloads("/config")) >= 2, 15, "discovery again")
        announcer.disconnect()
        announcer.loop_stop()
        late = Subscriber(broker, "homeassistant/device/#", client_id="late-ha")
        wait_until(lambda: late.payloads("/config"), 10, "the retained config")
        late.close()
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
        ha.close()
    with late.lock:
        topic, _, retained = late.messages[0]
    assert topic == "homeassistant/device/pdm_press_9/config" and retained
    payload = ha.payloads("/config")[0]
    assert payload["availability_topic"] == "pdm/press-9/status"
    assert payload["device"]["identifiers"] == ["pdm_press_9"]
    components = payload["components"]
    assert components["pdm_press_9_vibration_anomaly_anomaly"]["device_class"] == "problem"
    assert components["pdm_press_9_vibration_anomaly_score"]["state_topic"] == (
        "pdm/press-9/vibration-anomaly/result"
    )
    input_problem = components["pdm_press_9_vibration_anomaly_input_problem"]
    assert input_problem["state_topic"] == "pdm/press-9/vibration-anomaly/input"
    assert input_problem["entity_category"] == "diagnostic"
    rul = components["pdm_press_9_cmapss_fd001_rul_remaining_life"]
    assert rul["unit_of_measurement"] == "cycles" and rul["p"] == "sensor"
    assert components["pdm_press_9_cmapss_fd001_rul_alarm"]["state_topic"] == (
        "pdm/press-9/cmapss-fd001-rul/alarm"
    )
