"""The demo's live view: a real MQTT subscriber on the agent's topics, one line per model.

Everything shown comes from the broker (results, alarms, metrics), exactly as any dashboard
would see it; latency is subscriber arrival minus the window's last sample time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import paho.mqtt.client as mqtt

from edge_agent.mqtt.consumer import ContractError, ResultTracker
from edge_agent.mqtt.watch import describe_inputs, summarise

RATE_WINDOW_S = 5.0


@dataclass
class ModelLine:
    latest: str = "waiting for the first window"
    alarm: str = "normal"
    inputs: str = "-"
    raised_at: float | None = None  # measurement time the first alarm was raised
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    first_window_start: float | None = None
    results: int = 0

    def rate(self, now: float) -> float:
        recent = [t for t in self.arrivals if t > now - RATE_WINDOW_S]
        return len(recent) / RATE_WINDOW_S


class LiveView:
    """Subscribes to `<prefix>/<device>/#` and keeps what the terminal shows."""

    def __init__(self, host: str, port: int, protocol: str, prefix: str, device: str) -> None:
        self.lock = threading.Lock()
        self.models: dict[str, ModelLine] = {}
        self.tracker = ResultTracker()
        self.latencies: list[float] = []
        self.status = "waiting for the agent"
        self.spool = 0
        self.alarm_log: list[tuple[str, str, float]] = []  # (model, text, measurement time)
        self.first_result = threading.Event()
        version = mqtt.MQTTv311 if protocol == "3.1.1" else mqtt.MQTTv5
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-demo-view-{device}", protocol=version
        )
        topic = f"{prefix}/{device}/#"
        client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        client.on_message = self._on_message
        client.connect(host, port)
        client.loop_start()
        self.client = client

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        if message.topic.endswith("/metrics"):
            self._on_metrics(message.payload)
            return
        try:
            parsed = self.tracker.accept(message.topic, message.payload)
        except ContractError:
            return
        if parsed is None:
            return
        with self.lock:
            if parsed.kind == "status":
                self.status = parsed.payload.state  # type: ignore[union-attr]
                return
            line = self.models.setdefault(parsed.model or "", ModelLine())
            payload = parsed.payload
            if parsed.kind == "result":
                line.latest = summarise(payload)
                line.arrivals.append(now)
                line.results += 1
                self.latencies.append(now - payload.window.end)  # type: ignore[union-attr]
                if line.first_window_start is None:
                    line.first_window_start = payload.window.start  # type: ignore[union-attr]
                self.first_result.set()
            elif parsed.kind == "input_health":
                line.inputs = describe_inputs(payload.channels)  # type: ignore[union-attr]
            elif message.topic.endswith("/alarm/event"):
                state = f"{payload.state} {payload.severity or ''}".strip()  # type: ignore[union-attr]
                line.alarm = state.upper() if payload.state == "raised" else "normal"  # type: ignore[union-attr]
                if payload.state == "raised" and line.raised_at is None:  # type: ignore[union-attr]
                    line.raised_at = payload.since  # type: ignore[union-attr]
                self.alarm_log.append((parsed.model or "", state, payload.since))  # type: ignore[union-attr]

    def _on_metrics(self, payload: bytes) -> None:
        try:
            sinks = orjson.loads(payload).get("sinks", {})
        except (orjson.JSONDecodeError, AttributeError):
            return
        with self.lock:
            self.spool = sum(int(s.get("spool_messages", 0)) for s in sinks.values())

    def lines(self) -> list[str]:
        """One line per model, then one for the agent."""
        now = time.time()
        with self.lock:
            out = [
                f"  {model:20} {line.latest:34} alarm {line.alarm:18} "
                f"inputs {line.inputs:10} {line.rate(now):5.1f} results/s"
                for model, line in sorted(self.models.items())
            ]
            out.append(f"  agent {self.status}, spool {self.spool} waiting, broker connected")
        return out

    def latency_ms(self) -> tuple[float, float] | None:
        """(p50, p99) of sensor-to-subscriber latency in milliseconds."""
        with self.lock:
            if not self.latencies:
                return None
            p50, p99 = np.percentile(np.array(self.latencies) * 1000.0, [50, 99])
        return float(p50), float(p99)
