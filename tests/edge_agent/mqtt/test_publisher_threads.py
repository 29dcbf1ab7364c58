"""A committed live result is offered to the broker by the thread that committed it."""

from __future__ import annotations

import threading
from pathlib import Path

from edge_agent.config.mqtt import MqttConfig
from edge_agent.config.sinks import MqttSinkConfig
from edge_agent.events import ModelRef, Result
from edge_agent.mqtt.publisher import MqttPublisher
from tests.conftest import Broker, Subscriber, wait_until


def _result(seq: int) -> Result:
    ref = ModelRef("m", "bundle", "1.0.0", "0" * 64)
    output = {"label": "healthy", "confidence": 0.9, "probabilities": {"healthy": 0.9}}
    return Result("dev", ref, seq, 1.7e9 + seq, 1.7e9 + seq + 1, "classification", output, 0.5)


def test_the_committing_thread_publishes_live_results_itself(
    broker: Broker, tmp_path: Path
) -> None:
    """Test that flush() offers a committed live result from the calling thread while the
    sender is idle (no hand-off to the sender thread), and the subscriber receives it."""
    publisher = MqttPublisher(
        MqttSinkConfig(kind="mqtt", spool_dir=tmp_path),
        MqttConfig(host="127.0.0.1", port=broker.port),
        "dev",
        birth=lambda: {"state": "online", "device": "dev"},
    )
    callers: list[tuple[str, bool]] = []
    send_batch = publisher._send_batch

    def spy(live_only: bool = False) -> int:
        callers.append((threading.current_thread().name, live_only))
        return send_batch(live_only)

    publisher._send_batch = spy  # type: ignore[method-assign]
    subscriber = Subscriber(broker, "pdm/dev/m/result")
    try:
        assert publisher.connected_event.wait(10) and subscriber.subscribed.wait(10)
        wait_until(lambda: publisher._sending.acquire(blocking=False), 10, "an idle sender")
        publisher._sending.release()
        callers.clear()
        publisher.emit_many([_result(1)])
        publisher.flush()
        assert (threading.current_thread().name, True) in callers
        wait_until(lambda: len(subscriber.payloads("/result")) == 1, 10, "the result")
    finally:
        subscriber.close()
        publisher.close()
