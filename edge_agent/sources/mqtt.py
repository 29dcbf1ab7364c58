"""Samples from an MQTT subscription (JSON row/block or binary block payloads).

Callbacks run behind the fault boundary; `supervise()` replaces a client whose network thread
has ended, so one bad message can never silence the input.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.config.mqtt import MqttConfig
from edge_agent.config.sources import MqttSourceConfig
from edge_agent.faults import Boundary, Recovery
from edge_agent.logs import RateLimiter
from edge_agent.mqtt.client import (
    AgentClient,
    connect_async,
    discard,
    make_client,
    network_alive,
    stop_network,
    watch_connection,
)
from edge_agent.sources.base import Emit
from edge_agent.sources.payloads import PayloadError, parse

log = logging.getLogger("edge_agent.sources.mqtt")
STOP_TIMEOUT_S = 2.0  # a subscription has nothing to deliver: do not wait longer on stop


class MqttSource:
    def __init__(
        self, config: MqttSourceConfig, broker: MqttConfig, device_id: str, limiter: RateLimiter
    ) -> None:
        self.id = config.id
        self.config = config
        self.counters: Counter[str] = Counter()
        self._broker = broker
        self._client_id = f"edge-agent-{device_id}-in-{config.id}"
        self._limiter = limiter
        self._boundary = Boundary(log, limiter, self.counters)
        self._client: AgentClient | None = None
        self._emit: Emit | None = None
        self._generation = 0
        self.recovery = Recovery()
        self.connected = threading.Event()

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self._emit = emit
        self._client = self._start_client()
        try:
            stop.wait()
        finally:
            self._generation += 1  # late callbacks of the last client go quiet
            stop_network(self._client, STOP_TIMEOUT_S)

    def supervise(self) -> list[str]:
        """Replace the client if its network thread ended (e.g. a callback bug escaped)."""
        if self._client is None or network_alive(self._client):
            return []
        old = self._client
        self._client = self._start_client()
        discard(old)
        self.counters["recoveries"] += 1
        self.recovery.started()
        log.warning("source recovered: new broker connection", extra={"source": self.id})
        return ["network thread ended; reconnecting"]

    def stuck_for(self) -> float:
        return self.recovery.stuck_for()

    def _start_client(self) -> AgentClient:
        self._generation += 1
        generation = self._generation
        client = make_client(self._broker, self._client_id)

        def current() -> bool:
            return generation == self._generation

        report = watch_connection(client, log, f"source {self.id}")
        self._report_failure = report
        wrap = self._boundary.wrap
        client.on_connect = wrap("on_connect", self._on_connect, current)
        client.on_message = wrap("on_message", self._on_message, current)
        client.on_disconnect = wrap("on_disconnect", self._on_disconnect, current)
        client.on_connect_fail = self._boundary.wrap("on_connect_fail", lambda *_: report())
        connect_async(client, self._broker)
        client.loop_start()
        return client

    def _on_connect(self, c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.recovery.confirmed()  # the broker answered: any outage from here is an outage
        if reason.is_failure:
            self.counters["connect_refused"] += 1
            log.warning("source connect refused", extra={"source": self.id, "reason": str(reason)})
            return
        c.subscribe(self.config.topic, qos=self.config.qos)
        self._report_failure.connected()
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.counters["messages"] += 1
        try:
            block = parse(self.id, message.payload)
        except PayloadError as exc:
            self.counters[f"rejected:{exc.reason}"] += 1
            if self._limiter.allow(f"{self.id}:{exc.reason}"):
                log.warning(
                    "payload rejected",
                    extra={
                        "source": self.id,
                        "topic": message.topic,
                        "reason": exc.reason,
                        "detail": str(exc),
                        "count": self.counters[f"rejected:{exc.reason}"],
                    },
                )
            return
        assert self._emit is not None
        self._emit(block)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.recovery.confirmed()
        if self.connected.is_set():
            self.connected.clear()
            self.counters["disconnects"] += 1
            log.warning("source disconnected", extra={"source": self.id, "reason": str(reason)})
        else:
            self._report_failure()
