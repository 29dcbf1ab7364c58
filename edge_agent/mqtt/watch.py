"""`edge-agent watch`: live device status, latest results and alarms as a refreshing table."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

import paho.mqtt.client as mqtt

from edge_agent.config.mqtt import MqttConfig
from edge_agent.mqtt.client import connect_async, make_client
from edge_agent.mqtt.consumer import ContractError, ResultTracker


@dataclass
class Row:
    result: str = ""
    seq: int = 0
    alarm: str = "-"
    inputs: str = "-"  # input health: "ok", or the channels' active conditions


def summarise(payload: Any) -> str:
    if payload.task == "classification":
        return f"{payload.label} ({payload.confidence:.2f})"
    if payload.task == "anomaly":
        flag = "ANOMALY" if payload.is_anomaly else "normal"
        return f"score {payload.score:.3g} / {payload.threshold:.3g} {flag}"
    return f"rul {payload.rul:.1f} {payload.units}"


def describe_inputs(channels: dict[str, list[str]]) -> str:
    """'ok', or each unhealthy channel with its conditions: 'ay stuck'."""
    bad = [f"{name} {','.join(found)}" for name, found in channels.items() if found]
    return "; ".join(bad) or "ok"


class Watcher:
    def __init__(self, broker: MqttConfig, device: str = "+") -> None:
        self.tracker = ResultTracker()
        self.rows: dict[tuple[str, str], Row] = {}
        self.devices: dict[str, str] = {}
        self.lock = threading.Lock()
        self.received = threading.Event()
        prefix = broker.topic_prefix
        topics = [
            f"{prefix}/{device}/status",
            f"{prefix}/{device}/+/result",
            f"{prefix}/{device}/+/alarm",
            f"{prefix}/{device}/+/input",
        ]
        client = make_client(broker, f"edge-agent-watch-{time.monotonic_ns() % 10**9}")
        client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        client.on_message = self._on_message
        connect_async(client, broker)
        self.client = client

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            parsed = self.tracker.accept(message.topic, message.payload)
        except ContractError:
            return
        if parsed is None:
            return
        with self.lock:
            if parsed.kind == "status":
                self.devices[parsed.device] = parsed.payload.state  # type: ignore[union-attr]
            else:
                row = self.rows.setdefault((parsed.device, parsed.model or ""), Row())
                if parsed.kind == "result":
                    row.result = summarise(parsed.payload)
                    row.seq = parsed.payload.seq  # type: ignore[union-attr]
                elif parsed.kind == "input_health":
                    row.inputs = describe_inputs(parsed.payload.channels)  # type: ignore[union-attr]
                else:
                    p = parsed.payload
                    row.alarm = f"{p.state} {p.severity or ''}".strip()  # type: ignore[union-attr]
        self.received.set()

    def table(self) -> str:
        with self.lock:
            lines = [
                f"{'device':16} {'status':8} {'model':22} {'seq':>7} {'alarm':18} "
                f"{'inputs':16} latest",
                "-" * 117,
            ]
            for (device, model), row in sorted(self.rows.items()):
                lines.append(
                    f"{device:16} {self.devices.get(device, '?'):8} {model:22} "
                    f"{row.seq:>7} {row.alarm:18} {row.inputs:16} {row.result}"
                )
            for device, state in sorted(self.devices.items()):
                if not any(d == device for d, _ in self.rows):
                    lines.append(f"{device:16} {state:8}")
            dup = self.tracker.counters["duplicates"]
            lines.append(f"{self.tracker.counters['results']} results, {dup} duplicates dropped")
        return "\n".join(lines)

    def run(self, interval: float, updates: int | None, out: TextIO = sys.stdout) -> None:
        """Redraw every `interval` s; stop after `updates` redraws (None: until interrupted)."""
        self.client.loop_start()
        count = 0
        try:
            while updates is None or count < updates:
                time.sleep(interval)
                if out.isatty():
                    out.write("\x1b[2J\x1b[H")
                out.write(self.table() + "\n")
                out.flush()
                count += 1
        finally:
            self.client.disconnect()
            self.client.loop_stop()
