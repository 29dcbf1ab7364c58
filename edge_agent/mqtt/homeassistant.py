"""Home Assistant MQTT discovery (device-based, one retained config message per device).

Entities come from each model's task and manifest: a classifier gives a label sensor and a
confidence sensor; an anomaly model a score sensor and a problem binary sensor; a RUL model a
sensor in the manifest's units; every model an alarm binary sensor (and an input problem sensor
where its bundle carries a training reference); the device a diagnostic
"agent degraded" problem sensor. Availability follows the agent's status topic, so entities go
unavailable with the Last Will.
"""

from __future__ import annotations

from typing import Any

from edge_agent import __version__
from edge_agent.mqtt.topics import Topics

_RUL_DEVICE_CLASS = {"hours": ("duration", "h"), "days": ("duration", "d")}


def _entities(model: dict[str, Any], topics: Topics, device: str) -> dict[str, dict[str, Any]]:
    model_id, task = model["id"], model["task"]
    result, alarm = topics.result(model_id), topics.alarm(model_id)
    base = f"pdm_{device}_{model_id}".replace("-", "_").replace(".", "_")

    def entity(suffix: str, platform: str, topic: str, template: str, **extra: Any) -> tuple:
        return f"{base}_{suffix}", {
            "p": platform,
            "name": f"{model_id} {suffix.replace('_', ' ')}",
            "unique_id": f"{base}_{suffix}",
            "state_topic": topic,
            "value_template": template,
            **extra,
        }

    found = [
        entity(
            "alarm",
            "binary_sensor",
            alarm,
            "{{ 'ON' if value_json.state == 'raised' else 'OFF' }}",
            device_class="problem",
        )
    ]
    if model.get("input_checks"):
        found.append(
            entity(
                "input_problem",
                "binary_sensor",
                topics.input_health(model_id),
                "{{ 'OFF' if value_json.healthy else 'ON' }}",
                device_class="problem",
                entity_category="diagnostic",
            )
        )
    if task == "classification":
        found.append(entity("label", "sensor", result, "{{ value_json.label }}"))
        found.append(
            entity(
                "confidence",
                "sensor",
                result,
                "{{ (value_json.confidence * 100) | round(1) }}",
                unit_of_measurement="%",
                state_class="measurement",
            )
        )
    elif task == "anomaly":
        found.append(
            entity("score", "sensor", result, "{{ value_json.score }}", state_class="measurement")
        )
        found.append(
            entity(
                "anomaly",
                "binary_sensor",
                result,
                "{{ 'ON' if value_json.is_anomaly else 'OFF' }}",
                device_class="problem",
            )
        )
    else:
        units = model.get("units", "cycles")
        device_class, unit = _RUL_DEVICE_CLASS.get(units, (None, units))
        extra = {"unit_of_measurement": unit, "state_class": "measurement"}
        if device_class:
            extra["device_class"] = device_class
        found.append(entity("remaining_life", "sensor", result, "{{ value_json.rul }}", **extra))
    return dict(found)


def discovery(prefix: str, topics: Topics, birth: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(topic, payload) of the device discovery message for what the birth message lists."""
    device = birth["device"]
    node = f"pdm_{device}".replace("-", "_").replace(".", "_")
    components: dict[str, dict[str, Any]] = {}
    for model in birth.get("models", []):
        components.update(_entities(model, topics, device))
    health = f"{node}_degraded"  # the agent's own health: on while its status says degraded
    components[health] = {
        "p": "binary_sensor",
        "name": "agent degraded",
        "unique_id": health,
        "state_topic": topics.status,
        "value_template": "{{ 'ON' if value_json.state == 'degraded' else 'OFF' }}",
        "device_class": "problem",
        "entity_category": "diagnostic",
    }
    payload = {
        "device": {
            "identifiers": [node],
            "name": device,
            "manufacturer": "edge-pdm",
            "model": "edge-agent",
            "sw_version": __version__,
        },
        "origin": {"name": "edge-pdm", "sw_version": __version__},
        "availability_topic": topics.status,
        # Degraded still publishes: entities stay available and the health sensor says why.
        "availability_template": "{{ 'offline' if value_json.state == 'offline' else 'online' }}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "components": components,
    }
    return f"{prefix}/device/{node}/config", payload
