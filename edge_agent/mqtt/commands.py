"""Inbound commands on `<prefix>/<device>/cmd/<verb>`: a dispatch table of transport-free
handlers, with the verb and any MQTT v5 response topic validated before anything runs.

A handler takes the request object and returns the reply, or a `Future` of it when the answer
is only known later (a reload answers once it has succeeded or failed). Nothing a requester
sends can raise out of here: a bad verb, payload or response topic is counted under a fixed key
and answered with an error where there is somewhere safe to answer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import orjson
from paho.mqtt.client import topic_matches_sub

from edge_agent.logs import RateLimiter
from edge_agent.mqtt.topics import Topics
from edge_agent.schema import ID_RE

log = logging.getLogger("edge_agent.mqtt.commands")
Reply = dict[str, Any]
Handler = Callable[[dict[str, Any]], "Reply | Future[Reply]"]
MAX_TOPIC_BYTES = 65535


@dataclass(frozen=True, slots=True)
class Answer:
    """Where and what to reply; `reply` may still be pending."""

    topic: str
    reply: Reply | Future[Reply]
    correlation: bytes | None


def response_topic_problem(
    topic: str, forbidden: Sequence[str], allowed: Sequence[str] | None
) -> str | None:
    """Why `topic` may not receive a reply, or None. A reply must never land where a device
    publishes or obeys (results, alarms, status, metrics, health, commands, sensor input), on a
    `$` topic or a wildcard; an allow-list narrows it further. The broker's ACL decides the rest.
    """
    if not topic or len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        return "response topic must be 1 to 65535 bytes"
    if "+" in topic or "#" in topic or "\x00" in topic:
        return "response topic must not hold wildcards or NUL"
    if topic.startswith("$"):
        return "response topic must not be a $ topic"
    for pattern in forbidden:
        if topic_matches_sub(pattern, topic):
            return f"response topic is reserved ({pattern})"
    if allowed is not None and not any(topic_matches_sub(p, topic) for p in allowed):
        return "response topic is not in the allow-list"
    return None


class CommandRouter:
    def __init__(
        self,
        topics: Topics,
        handlers: Mapping[str, Handler],
        forbidden: Sequence[str],
        allowed: Sequence[str] | None,
        limiter: RateLimiter,
    ) -> None:
        self.topics = topics
        self.handlers = dict(handlers)
        self.forbidden = list(forbidden)
        self.allowed = list(allowed) if allowed is not None else None
        self.limiter = limiter
        self.counters: Counter[str] = Counter()

    def handle(self, topic: str, payload: bytes, properties: Any = None) -> Answer | None:
        """Validate and dispatch one command message; None when there is nowhere to answer."""
        verb = topic.rsplit("/", 1)[-1]
        response_topic = getattr(properties, "ResponseTopic", None)
        correlation = getattr(properties, "CorrelationData", None)
        valid_verb = bool(ID_RE.match(verb))
        default = self.topics.reply(verb) if valid_verb else None
        if response_topic is not None:
            problem = response_topic_problem(response_topic, self.forbidden, self.allowed)
            if problem is not None:  # answered on the device's own reply topic instead
                return self._refuse("refused_response_topic", verb, problem, default, correlation)
        target = response_topic if response_topic is not None else default
        if not valid_verb:
            return self._refuse(
                "invalid", verb, "the verb is not a valid topic level", target, correlation
            )
        if verb not in self.handlers:
            known = sorted(self.handlers)
            return self._refuse(
                "unknown", verb, f"unknown command {verb!r}; known: {known}", target, correlation
            )
        try:
            request = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError as exc:
            return self._refuse(
                "invalid", verb, f"payload is not JSON ({exc})", target, correlation
            )
        if not isinstance(request, dict):
            return self._refuse(
                "invalid", verb, "payload must be a JSON object", target, correlation
            )
        self.counters[f"command:{verb}"] += 1
        try:
            reply = self.handlers[verb](request)
        except Exception as exc:  # a handler bug is answered and logged, never raised
            self.counters["command:failed"] += 1
            if self.limiter.allow(f"command-failed:{verb}"):
                log.exception("command failed", extra={"command": verb})
            reply = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
        assert target is not None
        return Answer(target, reply, correlation)

    def _refuse(
        self, key: str, verb: str, why: str, target: str | None, correlation: bytes | None
    ) -> Answer | None:
        self.counters[f"command:{key}"] += 1
        if self.limiter.allow(f"command:{key}"):
            log.warning(
                "command refused",
                extra={
                    "command": verb[:64],
                    "reason": why,
                    "count": self.counters[f"command:{key}"],
                },
            )
        if target is None:
            return None
        return Answer(target, {"ok": False, "error": why}, correlation)


def encode_reply(verb_topic: str, reply: Reply) -> bytes:
    """The reply body: the verb (the last level of the command topic) and the handler's answer."""
    return orjson.dumps({"command": verb_topic.rsplit("/", 1)[-1], **reply})
