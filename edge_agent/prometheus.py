"""The optional Prometheus endpoint (`[metrics] prometheus_port`, extra `edge-pdm[prometheus]`).

A custom collector turns the agent's metrics snapshot (`telemetry.snapshot`, the figures the
metrics topic carries) into Prometheus families at scrape time, so both report the same numbers.
It is served from a private registry by prometheus_client's HTTP server, on 127.0.0.1 unless
configured otherwise. Names: `edge_agent_` prefix, units in the name, `_total` on counters,
histograms in seconds. Labels hold only configured ids, class names and fixed reason codes.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, get_args

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from edge_agent import __version__
from edge_agent.errors import ConfigError
from edge_agent.faults import Boundary
from edge_agent.logs import RateLimiter
from edge_agent.stream.inputcheck import CONDITIONS
from edge_agent.supervisor import SourceState
from edge_agent.telemetry import BOUNDS_MS

log = logging.getLogger("edge_agent.prometheus")

# Windower counters by kind; any other per-model counter is exported as edge_agent_model_events.
INPUT_REJECTS = ("missing_channels", "sample_rate_mismatch", "out_of_order")
WINDOW_RESETS = ("gap_reset", "time_jump_reset", "clock_resync", "clock_step_back")
MODEL_KEYS = ("results", "seq", "input_raised")  # exported by their own families
# Messages a sink gave up on, by reason (docs/mqtt.md#delivery); exported from zero.
DROPS = (
    "dropped_full_oldest",
    "dropped_full_new",
    "dropped_full_oldest_alarm",
    "dropped_expired",
    "dropped_memory_full",
    "dropped_memory_full_alarm",
    "lost_with_file",
    "metrics_dropped_offline",
    "health_events_dropped",
)
SINK_GAUGES = {
    "connected": ("edge_agent_mqtt_connected", "1 while connected to the broker."),
    "inflight": ("edge_agent_mqtt_inflight_messages", "QoS 1 messages awaiting PUBACK."),
    "spool_messages": ("edge_agent_spool_messages", "Spooled messages not yet acknowledged."),
    "spool_oldest_age_s": (
        "edge_agent_spool_oldest_age_seconds",
        "Age of the oldest unacknowledged message (0 when none).",
    ),
    "spool_disk_bytes": ("edge_agent_spool_disk_bytes", "Spool database plus write-ahead log."),
    "memory_held": (
        "edge_agent_spool_memory_messages",
        "Messages held in memory while the disk refuses writes.",
    ),
}
SINK_COUNTERS = {
    "reconnects": ("edge_agent_mqtt_reconnects", "Broker connections after the first."),
    "connection_recoveries": (
        "edge_agent_mqtt_recoveries",
        "Broker connections or sender threads replaced by the supervisor.",
    ),
    "spool_recoveries": ("edge_agent_spool_recoveries", "Storage faults the spool recovered from."),
}
# Sink keys shown above or derived (`recoveries` is the sum of the two recovery counters).
SINK_SHOWN = {*SINK_GAUGES, *SINK_COUNTERS, *DROPS, "recoveries", "delivery", "spool_fault"}
HISTOGRAMS = {
    "inference_ms": (
        "edge_agent_inference_seconds",
        "model",
        "Features + int8 invoke + interpretation, per window.",
    ),
    "end_to_end_ms": (
        "edge_agent_end_to_end_seconds",
        "model",
        "From the arrival of the block that completed a window to its result accepted by the "
        "sinks.",
    ),
    "queue_wait_ms": (
        "edge_agent_queue_wait_seconds",
        "source",
        "From a block's arrival to its dispatch to the models.",
    ),
    "publish_ack_ms": (
        "edge_agent_publish_ack_seconds",
        "sink",
        "From a message's spool put to its PUBACK.",
    ),
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _buckets(pairs: list[list[Any]]) -> list[tuple[str, float]]:
    """Sparse [le_ms, count] pairs -> Prometheus' cumulative buckets in seconds, +Inf last."""
    counts = {le: n for le, n in pairs}
    total, out = 0, []
    for le in BOUNDS_MS:
        total += counts.get(le, 0)
        out.append((f"{le / 1000:g}", total))
    out.append(("+Inf", total + counts.get(None, 0)))
    return out


def families(snapshot: dict[str, Any], device: str) -> list[Metric]:
    """Every family for one scrape, built completely before any is returned."""
    info = GaugeMetricFamily(
        "edge_agent_info", "The agent: device and version.", labels=["device", "version"]
    )
    info.add_metric([device, __version__], 1)
    out: list[Metric] = [
        info,
        GaugeMetricFamily(
            "edge_agent_degraded",
            "1 while degraded (the reasons are on the status topic).",
            value=float(snapshot["state"] == "degraded"),
        ),
        GaugeMetricFamily("edge_agent_uptime_seconds", "Since start.", value=snapshot["uptime_s"]),
        GaugeMetricFamily(
            "edge_agent_queue_blocks", "Sample blocks queued.", value=snapshot["queue_blocks"]
        ),
    ]
    events = CounterMetricFamily(
        "edge_agent_events", "Agent counters by key (the `agent` object).", labels=["event"]
    )
    for key, value in sorted(snapshot["agent"].items()):
        events.add_metric([key], value)
    out += [events, *_sources(snapshot["sources"]), *_models(snapshot["models"])]
    out += [*_sinks(snapshot["sinks"]), *_histograms(snapshot["histograms"])]
    return out


def _sources(sources: dict[str, dict[str, Any]]) -> list[Metric]:
    state = GaugeMetricFamily(
        "edge_agent_source_state", "1 for the source's current state.", labels=["source", "state"]
    )
    restarts = CounterMetricFamily(
        "edge_agent_source_restarts", "Crashed sources restarted.", labels=["source"]
    )
    rejected = CounterMetricFamily(
        "edge_agent_payloads_rejected",
        "Sensor payloads rejected, by reason.",
        labels=["source", "reason"],
    )
    other = CounterMetricFamily(
        "edge_agent_source_events", "Other source counters by key.", labels=["source", "event"]
    )
    for source, entry in sources.items():
        for name in get_args(SourceState):
            state.add_metric([source, name], float(entry["state"] == name))
        restarts.add_metric([source], entry["restarts"])
        for key, value in entry.items():
            if key.startswith("rejected:"):
                rejected.add_metric([source, key.removeprefix("rejected:")], value)
            elif key != "restarts" and _number(value):
                other.add_metric([source, key], value)
    return [state, restarts, rejected, other]


def _models(models: dict[str, dict[str, Any]]) -> list[Metric]:
    results = CounterMetricFamily("edge_agent_results", "Results emitted.", labels=["model"])
    rejected = CounterMetricFamily(
        "edge_agent_input_rejected",
        "Sample blocks the model's windower rejected, by reason.",
        labels=["model", "reason"],
    )
    resets = CounterMetricFamily(
        "edge_agent_window_resets",
        "Window restarts on gaps and clock faults, by reason.",
        labels=["model", "reason"],
    )
    raised = CounterMetricFamily(
        "edge_agent_input_conditions_raised",
        "Input health conditions raised on any channel, by condition.",
        labels=["model", "condition"],
    )
    other = CounterMetricFamily(
        "edge_agent_model_events", "Other per-model counters by key.", labels=["model", "event"]
    )
    for model, entry in models.items():
        results.add_metric([model], entry["results"])
        for condition in CONDITIONS:
            raised.add_metric([model, condition], entry.get("input_raised", {}).get(condition, 0))
        for reason in INPUT_REJECTS:
            rejected.add_metric([model, reason], entry.get(reason, 0))
        for reason in WINDOW_RESETS:
            resets.add_metric([model, reason], entry.get(reason, 0))
        for key, value in entry.items():
            known = (
                key in ("results", "seq", "input_raised") or key in INPUT_REJECTS + WINDOW_RESETS
            )
            if not known and _number(value):
                other.add_metric([model, key], value)
    return [results, rejected, resets, raised, other]


def _sinks(sinks: dict[str, dict[str, Any]]) -> list[Metric]:
    gauges = {
        key: GaugeMetricFamily(name, doc, labels=["sink"])
        for key, (name, doc) in SINK_GAUGES.items()
    }
    stalled = GaugeMetricFamily(
        "edge_agent_mqtt_delivery_stalled", "1 while PUBACKs have stopped.", labels=["sink"]
    )
    fault = GaugeMetricFamily(
        "edge_agent_spool_fault", "1 while the spool's disk refuses writes.", labels=["sink"]
    )
    counters = {
        key: CounterMetricFamily(name, doc, labels=["sink"])
        for key, (name, doc) in SINK_COUNTERS.items()
    }
    dropped = CounterMetricFamily(
        "edge_agent_dropped_messages", "Messages given up on, by reason.", labels=["sink", "reason"]
    )
    other = CounterMetricFamily(
        "edge_agent_sink_events", "Other sink counters by key.", labels=["sink", "event"]
    )
    for sink, entry in sinks.items():
        for key, family in [*gauges.items(), *counters.items()]:
            if key in entry:
                family.add_metric([sink], float(entry[key]))
        if "delivery" in entry:
            stalled.add_metric([sink], float(entry["delivery"] == "stalled"))
        if "spool_fault" in entry:
            fault.add_metric([sink], float(entry["spool_fault"] is not None))
        if "spool_messages" in entry:  # a spooling sink: every drop reason from zero
            for reason in DROPS:
                dropped.add_metric([sink, reason], entry.get(reason, 0))
        for key, value in entry.items():
            if key not in SINK_SHOWN and _number(value):
                other.add_metric([sink, key], value)
    return [*gauges.values(), stalled, fault, *counters.values(), dropped, other]


def _histograms(groups: dict[str, dict[str, dict[str, Any]]]) -> list[Metric]:
    out = []
    for key, (name, label, doc) in HISTOGRAMS.items():
        family = HistogramMetricFamily(name, doc, labels=[label])
        for value, histogram in groups.get(key, {}).items():
            family.add_metric([value], _buckets(histogram["buckets"]), histogram["sum"] / 1000)
        out.append(family)
    return out


class AgentCollector:
    """Builds the families from one snapshot per scrape. A failure is counted
    (`faults:prometheus`) and logged once per interval; the scrape still answers, with
    `edge_agent_scrape_errors_total`, so an error can never reach the agent or go unseen."""

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        device: str,
        counters: Counter[str],
        limiter: RateLimiter,
    ) -> None:
        self.counters = counters
        boundary = Boundary(log, limiter, counters)
        self._families = boundary.wrap("prometheus", lambda: families(snapshot(), device))

    def collect(self) -> Iterator[Metric]:
        yield from self._families() or []
        yield CounterMetricFamily(
            "edge_agent_scrape_errors",
            "Scrapes whose figures could not be built (logged).",
            value=self.counters["faults:prometheus"],
        )


class Endpoint:
    """The HTTP server, listening from construction (so a taken port stops the agent before it
    starts anything), serving the collector once `serve()` hands it over."""

    def __init__(self, host: str, port: int) -> None:
        self.registry = CollectorRegistry()
        self.address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        try:
            self._server, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"[metrics] cannot serve Prometheus on {self.address}: {exc.strerror or exc}"
            ) from None
        if not ipaddress.ip_address(host).is_loopback:
            log.warning(
                "prometheus endpoint reachable from the network, without authentication",
                extra={"address": self.address},
            )
        log.info("prometheus endpoint listening", extra={"url": f"http://{self.address}/metrics"})

    def serve(self, collector: AgentCollector) -> None:
        self.registry.register(collector)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
