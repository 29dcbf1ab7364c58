"""Latency histograms and the metrics snapshot: one set of figures behind the metrics topic, the
`status` command, the shutdown log line and the Prometheus endpoint (docs/mqtt.md#metrics).

A histogram is a fixed set of bucket counts and a sum, in milliseconds. Observing one value is
a bisect into the bounds and two additions, with no allocation, because it runs once per result
on the main thread (and once per acknowledgement on paho's thread).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from edge_agent.sinks.base import ReportsStats, TimesDelivery

if TYPE_CHECKING:
    from edge_agent.agent import Agent

# Upper bounds (ms, inclusive) in 1-2.5-5 steps: 25 us covers a small int8 model on a PC, 60 s a
# delivery held up by a reconnect. Longer waits (a broker outage) land in the overflow bucket.
BOUNDS_MS: tuple[float, ...] = (
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0,
    250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 25000.0, 60000.0,
)  # fmt: skip
QUANTILES = {"p50": 0.5, "p99": 0.99}


class Histogram:
    """Counts per bucket of BOUNDS_MS plus an overflow bucket, and the sum of what was observed.

    One writer thread; readers copy the counts (a list copy is atomic under the GIL), so a reader
    never sees a torn count, at worst a sum that includes one observation more than the counts.
    """

    __slots__ = ("_counts", "_mark", "_recent", "_sum")

    def __init__(self) -> None:
        self._counts = [0] * (len(BOUNDS_MS) + 1)
        self._sum = 0.0
        self._mark = list(self._counts)  # the counts at the last roll()
        self._recent = list(self._counts)  # what was observed between the last two roll()s

    def observe(self, ms: float) -> None:
        self._counts[bisect_left(BOUNDS_MS, ms)] += 1
        self._sum += ms

    def observe_many(self, ms: float, count: int) -> None:
        """`count` observations of the same value (the results of one batch)."""
        self._counts[bisect_left(BOUNDS_MS, ms)] += count
        self._sum += ms * count

    def counts(self) -> list[int]:
        """Observations per bucket (not cumulative), the overflow bucket last."""
        return list(self._counts)

    def roll(self) -> None:
        """Close the current interval: its percentiles are the ones reported until the next roll
        (lifetime percentiles would hide a regression behind weeks of normal operation)."""
        now = list(self._counts)
        self._recent = [a - b for a, b in zip(now, self._mark)]
        self._mark = now

    def payload(self) -> dict[str, Any]:
        """The metrics-topic form: non-empty buckets as [le, count] (le None: the overflow),
        lifetime count and sum, and p50/p99 of the last closed interval (None if it was empty)."""
        counts, total = list(self._counts), self._sum
        recent = self._recent
        return {
            "buckets": [[le, n] for le, n in zip((*BOUNDS_MS, None), counts) if n],
            "count": sum(counts),
            "sum": round(total, 3),
            **{name: quantile(recent, q) for name, q in QUANTILES.items()},
        }


def quantile(counts: list[int], q: float) -> float | None:
    """The q-quantile estimated from bucket counts, interpolating linearly inside its bucket (as
    Prometheus' histogram_quantile does); the largest bound if it falls in the overflow bucket."""
    total = sum(counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            if index == len(BOUNDS_MS):
                return BOUNDS_MS[-1]
            lower = BOUNDS_MS[index - 1] if index else 0.0
            return round(lower + (BOUNDS_MS[index] - lower) * (rank - seen) / n, 4)
        seen += n
    return BOUNDS_MS[-1]  # unreachable unless q > 1


def histograms(agent: Agent) -> dict[str, dict[str, Histogram]]:
    """Every histogram by name, then by what it measures: a model, a source or a sink. Label
    values are configured ids and class names, never anything taken from input data."""
    return {
        "inference_ms": {p.ref.id: p.inference_ms for p in agent.pipelines},
        "end_to_end_ms": {p.ref.id: p.end_to_end_ms for p in agent.pipelines},
        "queue_wait_ms": dict(agent.queue_wait_ms),
        "publish_ack_ms": {
            type(s).__name__: s.publish_ack_ms for s in agent.sinks if isinstance(s, TimesDelivery)
        },
    }


def roll(agent: Agent) -> None:
    """Start a new percentile interval in every histogram (at each metrics message)."""
    for group in histograms(agent).values():
        for histogram in group.values():
            histogram.roll()


def snapshot(agent: Agent) -> dict[str, Any]:
    """The agent's health, counters, gauges and histograms as one JSON-ready dict. Safe to call
    from another thread (a scrape): each part is read once, so a reload in between is harmless."""
    runner, pipelines = agent.sources, agent.pipelines
    states = runner.states()
    return {
        "state": agent.health.state,
        "reasons": list(agent.health.reasons),
        "agent": dict(agent.counters),
        "uptime_s": round(time.time() - agent.started_at, 3),
        "queue_blocks": agent.queue.qsize(),
        "sinks": {type(s).__name__: s.stats() for s in agent.sinks if isinstance(s, ReportsStats)},
        "sources": {
            slot.source.id: {
                "state": states[slot.source.id],
                "restarts": slot.restarts,
                **slot.source.counters,
            }
            for slot in runner.slots
        },
        "models": {
            p.ref.id: {
                "results": p.results,
                "seq": p.seq,
                "input_raised": dict(p.input_problems),
                **p.windower.counters,
            }
            for p in pipelines
        },
        "histograms": {
            name: {label: h.payload() for label, h in group.items()}
            for name, group in histograms(agent).items()
        },
    }
