"""The metrics topic's histograms and the Prometheus endpoint, with a real agent fed over a real
Mosquitto and scraped over real HTTP: the same figures on both, and the endpoint's failures
(port taken, extra missing, a broken snapshot) each stated once, never fatal to the agent."""

from __future__ import annotations

import logging
import socket
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import get_args

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent import __version__
from edge_agent.agent import Agent
from edge_agent.cli import main
from edge_agent.config import load_agent_config
from edge_agent.logs import RateLimiter
from edge_agent.mqtt.contract import MetricsPayload
from edge_agent.prometheus import AgentCollector, Endpoint
from edge_agent.sim.vibration import CHANNELS, MachineConditions, generate
from edge_agent.sources.payloads import encode_binary
from edge_agent.stream.blocks import SampleBlock
from edge_agent.supervisor import SourceState
from edge_agent.telemetry import BOUNDS_MS
from tests.conftest import (
    Broker,
    Subscriber,
    agent_config,
    agent_thread,
    free_port,
    mqtt_client,
    run_cli,
    wait_until,
)

DEVICE = "prom1"
MODEL = "vibration-fault"
RATE = 25600.0
BLOCK = 4096  # the model's hop: 6 blocks make (6 - 2) + 1 = 5 windows of 8192
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _config(folder: Path, broker: Broker, metrics: str) -> Path:
    return agent_config(
        folder,
        DEVICE,
        '[[sources]]\nkind = "mqtt"\nid = "motor"\ntopic = "plant/motor"',
        [(MODEL, "motor")],
        broker_port=broker.port,
        mqtt_sink=True,
        sink_options="metrics_interval_s = 0.3",
        extra=metrics,
    )


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _listening(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def _send_input(broker: Broker) -> None:
    """Six contiguous healthy blocks (5 windows), 3 undecodable payloads and one block at the
    wrong sample rate (rejected by the model's windower)."""
    values = generate(MachineConditions(), 6 * BLOCK, RATE, seed=5).astype(np.float64)
    sensor = mqtt_client(broker, "test-sensor")
    messages = [
        encode_binary(
            SampleBlock(
                "motor",
                CHANNELS,
                values[i * BLOCK : (i + 1) * BLOCK],
                1.7e9 + i * BLOCK / RATE,
                rate_hz=RATE,
                seq=i,
            )
        )
        for i in range(6)
    ]
    messages += [b"\x00\xff"] * 3
    messages.append(
        encode_binary(SampleBlock("motor", CHANNELS, values[:BLOCK], 1.71e9, rate_hz=RATE / 2))
    )
    for message in messages:
        sensor.publish("plant/motor", message, qos=1).wait_for_publish(5)
    sensor.disconnect()
    sensor.loop_stop()


def _delivered(sub: Subscriber) -> int:
    """QoS 1 messages the agent spooled that reached the subscriber: results, alarms and input
    health (retained state and events)."""
    topics = (f"/{MODEL}/result", "/alarm", "/alarm/event", "/input", "/input/event")
    return sum(len(sub.payloads(suffix)) for suffix in topics)


def _settled(sub: Subscriber) -> dict | None:
    """The latest metrics message once all 5 results have arrived and every spooled message has
    been acknowledged (as many PUBACKs timed as messages delivered)."""
    metrics = sub.payloads("/metrics")
    if len(sub.payloads(f"/{MODEL}/result")) < 5 or not metrics:
        return None
    last = metrics[-1]
    acked = last["histograms"]["publish_ack_ms"]["MqttPublisher"]["count"]
    return last if last["models"][MODEL]["results"] == 5 and acked == _delivered(sub) else None


def test_metrics_topic_and_prometheus_report_the_same_figures(
    broker: Broker, tmp_path: Path
) -> None:
    """Test that, after 5 results, the metrics message's histograms count exactly 5 inferences
    and 5 end-to-end latencies, every block's queue wait and every PUBACK; that the endpoint,
    bound to 127.0.0.1 by default, reports the same histograms and counters; and that the
    message stays small and matches the contract."""
    port = free_port()
    sub = Subscriber(broker, f"pdm/{DEVICE}/#")
    agent = Agent(
        load_agent_config(_config(tmp_path, broker, f"[metrics]\nprometheus_port = {port}"))
    )
    thread = agent_thread(agent)
    try:
        wait_until(agent.sources.slots[0].source.connected.is_set, 10, "the input subscription")
        _send_input(broker)
        wait_until(lambda: _settled(sub) is not None, 30, "a metrics message after delivery")
        metrics = _settled(sub)
        assert metrics is not None
        scraped = _scrape(port)
        listening = _listening(port)
        delivered = _delivered(sub)
    finally:
        agent.stop_event.set()
        thread.join(timeout=20)
        sub.close()
    assert listening == {"127.0.0.1"}
    MetricsPayload.model_validate(metrics)
    assert len(orjson.dumps(metrics)) < 4096
    histograms = metrics["histograms"]
    inference, end_to_end = histograms["inference_ms"][MODEL], histograms["end_to_end_ms"][MODEL]
    queue_wait = histograms["queue_wait_ms"]["motor"]
    publish_ack = histograms["publish_ack_ms"]["MqttPublisher"]
    assert inference["count"] == end_to_end["count"] == 5 == metrics["models"][MODEL]["results"]
    assert queue_wait["count"] == 7  # six good blocks and the one at the wrong rate
    assert publish_ack["count"] == delivered >= 5
    assert 0 < inference["sum"] < end_to_end["sum"]  # end to end includes the inference
    for histogram in (inference, end_to_end, queue_wait, publish_ack):
        assert sum(n for _, n in histogram["buckets"]) == histogram["count"]
    assert any(  # some message covered the interval in which the results were made
        m["histograms"]["inference_ms"][MODEL]["p50"] is not None for m in sub.payloads("/metrics")
    )
    source, publisher = metrics["sources"]["motor"], metrics["sinks"]["MqttPublisher"]
    assert source["rejected:bad_json"] == 3
    assert metrics["models"][MODEL]["sample_rate_mismatch"] == 1

    def value(name: str, **labels: str) -> float:
        return scraped[(name, frozenset(labels.items()))]

    for name, key, label, mqtt in [
        ("edge_agent_inference_seconds", "model", MODEL, inference),
        ("edge_agent_end_to_end_seconds", "model", MODEL, end_to_end),
        ("edge_agent_queue_wait_seconds", "source", "motor", queue_wait),
        ("edge_agent_publish_ack_seconds", "sink", "MqttPublisher", publish_ack),
    ]:
        assert value(f"{name}_count", **{key: label}) == mqtt["count"]
        assert value(f"{name}_sum", **{key: label}) == pytest.approx(mqtt["sum"] / 1000, abs=1e-6)
        per_bucket = dict(map(tuple, mqtt["buckets"]))
        cumulative = np.cumsum([per_bucket.get(le, 0) for le in BOUNDS_MS]).tolist()
        buckets = [
            value(f"{name}_bucket", **{key: label, "le": f"{le / 1000:g}"}) for le in BOUNDS_MS
        ]
        assert buckets == cumulative
        assert value(f"{name}_bucket", **{key: label, "le": "+Inf"}) == mqtt["count"]
    assert value("edge_agent_results_total", model=MODEL) == 5
    assert value("edge_agent_payloads_rejected_total", source="motor", reason="bad_json") == 3
    assert value("edge_agent_input_rejected_total", model=MODEL, reason="sample_rate_mismatch") == 1
    assert value("edge_agent_input_rejected_total", model=MODEL, reason="out_of_order") == 0
    states = {
        s: value("edge_agent_source_state", source="motor", state=s) for s in get_args(SourceState)
    }
    assert sorted(states.values()) == [0] * (len(states) - 1) + [1]  # one current state
    sink = {"sink": "MqttPublisher"}
    assert value("edge_agent_spool_messages", **sink) == publisher["spool_messages"]
    assert value("edge_agent_spool_oldest_age_seconds", **sink) == publisher["spool_oldest_age_s"]
    assert value("edge_agent_mqtt_reconnects_total", **sink) == publisher["reconnects"] == 0
    assert value("edge_agent_mqtt_recoveries_total", **sink) == publisher["connection_recoveries"]
    assert value("edge_agent_dropped_messages_total", reason="dropped_full_oldest", **sink) == 0
    assert value("edge_agent_sink_events_total", event="spooled", **sink) == publisher["spooled"]
    assert value("edge_agent_mqtt_connected", **sink) == 1
    assert value("edge_agent_degraded") == 0
    assert value("edge_agent_info", device=DEVICE, version=__version__) == 1
    assert value("edge_agent_scrape_errors_total") == 0


def test_port_in_use_exits_2_with_one_line(tmp_path: Path) -> None:
    """Test that a Prometheus port another process holds stops `edge-agent run` with exit 2 and
    one line naming the address, before it connects anywhere."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = agent_config(
            tmp_path,
            DEVICE,
            '[[sources]]\nkind = "simulator"\nid = "motor"',
            [(MODEL, "motor")],
            extra=f"[metrics]\nprometheus_port = {port}",
        )
        result = run_cli("run", "-c", str(config), timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert lines == [
        f"edge-agent: error: [metrics] cannot serve Prometheus on 127.0.0.1:{port}: "
        "Address already in use"
    ], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_extra_is_one_line_at_check_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Test that a configured endpoint without prometheus_client installed fails check-config
    with exit 2 and one line saying which extra to install."""
    config = agent_config(
        tmp_path,
        DEVICE,
        '[[sources]]\nkind = "simulator"\nid = "motor"',
        [(MODEL, "motor")],
        extra="[metrics]\nprometheus_port = 9108",
    )
    monkeypatch.delitem(sys.modules, "edge_agent.prometheus")
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what an absent package gives
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "edge-agent: error: [metrics] prometheus_port is set but prometheus_client is not "
        "installed (pip install 'edge-pdm[prometheus]')\n"
    )


def test_check_config_names_the_endpoint(tmp_path: Path) -> None:
    """Test that check-config accepts an IPv6 loopback host and reports where it would serve,
    and rejects a host name with the key path."""

    def config(host: str) -> Path:
        return agent_config(
            tmp_path,
            DEVICE,
            '[[sources]]\nkind = "simulator"\nid = "motor"',
            [(MODEL, "motor")],
            extra=f'[metrics]\nprometheus_port = 9108\nprometheus_host = "{host}"',
        )

    result = run_cli("check-config", str(config("::1")))
    assert result.returncode == 0, result.stderr
    assert "  prometheus endpoint on ::1 port 9108" in result.stdout.splitlines()
    result = run_cli("check-config", str(config("localhost")))
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "metrics.prometheus_host: value is not a valid IPv4 or IPv6 address"
    )


def test_a_failing_snapshot_is_counted_logged_once_and_still_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Test that when the figures cannot be built, every scrape still answers 200 with the
    error count, the error is counted under faults:prometheus and logged once per interval."""
    counters: Counter[str] = Counter()

    def broken() -> dict:
        raise KeyError("models")

    port = free_port()
    endpoint = Endpoint("127.0.0.1", port)
    endpoint.serve(AgentCollector(broken, DEVICE, counters, RateLimiter(60.0)))
    caplog.set_level(logging.ERROR, "edge_agent.prometheus")
    try:
        first, second = _scrape(port), _scrape(port)
    finally:
        endpoint.close()
    assert first[("edge_agent_scrape_errors_total", frozenset())] == 1
    assert second[("edge_agent_scrape_errors_total", frozenset())] == 2
    assert counters["faults:prometheus"] == 2
    assert [r.getMessage() for r in caplog.records] == ["unexpected error; carrying on"]
    assert not [name for name, _ in second if name.startswith("edge_agent_results")]


def test_non_loopback_address_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """Test that listening on every address logs one warning that the endpoint is reachable
    from the network without authentication, and serves."""
    caplog.set_level(logging.WARNING, "edge_agent.prometheus")
    port = free_port()
    endpoint = Endpoint("0.0.0.0", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            status = response.status
    finally:
        endpoint.close()
    assert status == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "prometheus endpoint reachable from the network, without authentication"
    ]
