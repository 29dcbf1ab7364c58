"""The MQTT topic contract (docs/mqtt.md). Every id placed in a topic is validated elsewhere
(config and manifest schemas), so no level can hold '+', '#' or '/'."""

from __future__ import annotations

from edge_agent.schema import ID_RE


def checked(level: str) -> str:
    if not ID_RE.match(level):
        raise ValueError(f"{level!r} cannot be an MQTT topic level")
    return level


class Topics:
    def __init__(self, prefix: str, device: str) -> None:
        self.base = f"{checked(prefix)}/{checked(device)}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def metrics(self) -> str:
        return f"{self.base}/metrics"

    @property
    def commands(self) -> str:
        return f"{self.base}/cmd/+"

    def result(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/result"

    def alarm(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/alarm"

    def alarm_event(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/alarm/event"

    def reply(self, verb: str) -> str:
        return f"{self.base}/cmd/{checked(verb)}/reply"
