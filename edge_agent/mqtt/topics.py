"""The MQTT topic contract (docs/mqtt.md), defined once. Every id placed in a topic is checked
against the one identifier rule, so no level can hold '+', '#' or '/'."""

from __future__ import annotations

from edge_agent.schema import ID_RE


def checked(level: str) -> str:
    if not ID_RE.match(level):
        raise ValueError(f"{level!r} cannot be an MQTT topic level")
    return level


class Topics:
    def __init__(self, prefix: str, device: str) -> None:
        self.prefix = checked(prefix)
        self.base = f"{self.prefix}/{checked(device)}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def metrics(self) -> str:
        return f"{self.base}/metrics"

    @property
    def health_event(self) -> str:
        return f"{self.base}/health/event"

    @property
    def commands(self) -> str:
        return f"{self.base}/cmd/+"

    def result(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/result"

    def alarm(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/alarm"

    def alarm_event(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/alarm/event"

    def input_health(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/input"

    def input_health_event(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/input/event"

    def deployment(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/deployment"

    def deployment_event(self, model: str) -> str:
        return f"{self.base}/{checked(model)}/deployment/event"

    def reply(self, verb: str) -> str:
        return f"{self.base}/cmd/{checked(verb)}/reply"

    def reserved(self) -> list[str]:
        """Filters for every topic any device under this prefix publishes or obeys: a command's
        response topic may never match one of them."""
        p = self.prefix
        return [
            f"{p}/+/status",
            f"{p}/+/metrics",
            f"{p}/+/health",
            f"{p}/+/health/#",
            f"{p}/+/cmd/#",
            f"{p}/+/+/result",
            f"{p}/+/+/alarm",
            f"{p}/+/+/alarm/#",
            f"{p}/+/+/input",
            f"{p}/+/+/input/#",
            f"{p}/+/+/deployment",
            f"{p}/+/+/deployment/#",
        ]
