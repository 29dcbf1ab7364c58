"""Samples from an MQTT subscription (JSON row/block or binary block payloads)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.config.mqtt import MqttConfig
from edge_agent.config.sources import MqttSourceConfig
from edge_agent.logs import RateLimiter
from edge_agent.mqtt.client import connect_async, make_client, watch_connection
from edge_agent.sources.base import Emit
from edge_agent.sources.payloads import PayloadError, parse

log = logging.getLogger("edge_agent.sources.mqtt")


class MqttSource:
    def __init__(
        self, config: MqttSourceConfig, broker: MqttConfig, device_id: str, limiter: RateLimiter
    ) -> None:
        self.id = config.id
        self.config = config
        self.counters: Counter[str] = Counter()
        self._broker = broker
        self._client = make_client(broker, f"edge-agent-{device_id}-in-{config.id}")
        self._limiter = limiter
        self.connected = threading.Event()

    def run(self, emit: Emit, stop: threading.Event) -> None:
        client = self._client

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                self.counters["connect_refused"] += 1
                log.warning(
                    "source connect refused", extra={"source": self.id, "reason": str(reason)}
                )
                return
            c.subscribe(self.config.topic, qos=self.config.qos)
            self.connected.set()

        def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
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
            emit(block)

        client.on_connect = on_connect
        client.on_message = on_message
        report_failure = watch_connection(client, log, f"source {self.id}")

        def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if self.connected.is_set():
                self.connected.clear()
                self.counters["disconnects"] += 1
                log.warning("source disconnected", extra={"source": self.id, "reason": str(reason)})
            else:
                report_failure()

        client.on_disconnect = on_disconnect
        connect_async(client, self._broker)
        client.loop_start()
        try:
            stop.wait()
        finally:
            client.disconnect()
            client.loop_stop()
