"""For consumers of the agent's MQTT output: parse and validate payloads, de-duplicate results.

    from edge_agent.mqtt.consumer import ResultTracker
    tracker = ResultTracker()
    for topic, payload in messages:                 # from any MQTT client
        message = tracker.accept(topic, payload)    # None for a duplicate
        if message is not None: ...

Delivery is at least once; a result is identified by (device, model id, seq).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import orjson
from pydantic import ValidationError

from edge_agent.mqtt.contract import (
    AlarmPayload,
    InputHealthPayload,
    ResultPayload,
    StatusPayload,
)

Kind = Literal["result", "alarm", "input_health", "status"]


@dataclass(frozen=True)
class Message:
    kind: Kind
    device: str
    model: str | None
    payload: ResultPayload | AlarmPayload | InputHealthPayload | StatusPayload


class ContractError(ValueError):
    """A payload that does not follow the published contract."""


def parse(topic: str, payload: bytes) -> Message:
    """Validate one message from `<prefix>/<device>/...` against the contract."""
    levels = topic.split("/")
    try:
        data = orjson.loads(payload)
        if levels[-1] == "status":
            status = StatusPayload.model_validate(data)
            return Message("status", status.device, None, status)
        if levels[-1] == "result":
            result = ResultPayload.model_validate(data)
            return Message("result", result.device, result.model.id, result)
        if levels[-1] == "alarm" or levels[-2:] == ["alarm", "event"]:
            alarm = AlarmPayload.model_validate(data)
            return Message("alarm", alarm.device, alarm.model.id, alarm)
        if levels[-1] == "input" or levels[-2:] == ["input", "event"]:
            health = InputHealthPayload.model_validate(data)
            return Message("input_health", health.device, health.model.id, health)
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise ContractError(f"{topic}: {exc}") from None
    raise ContractError(f"{topic}: not a result, alarm, input health or status topic")


class ResultTracker:
    """De-duplicates results on (device, model, seq) and notices gaps in the sequence."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], set[int]] = {}
        self.counters: Counter[str] = Counter()

    def accept(self, topic: str, payload: bytes) -> Message | None:
        try:
            message = parse(topic, payload)
        except ContractError:
            self.counters["invalid"] += 1
            raise
        if message.kind != "result":
            return message
        key = (message.device, message.model or "")
        seqs = self.seen.setdefault(key, set())
        seq = message.payload.seq  # type: ignore[union-attr]
        if seq in seqs:
            self.counters["duplicates"] += 1
            return None
        seqs.add(seq)
        self.counters["results"] += 1
        return message

    def missing(self, device: str, model: str) -> list[int]:
        """Sequence numbers not (yet) received between 1 and the highest seen."""
        seqs = self.seen.get((device, model), set())
        return sorted(set(range(1, max(seqs, default=0) + 1)) - seqs)
