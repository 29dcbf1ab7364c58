"""The model pipeline: a block's windows inferred in batches give what one at a time gives."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.config.models import AlarmConfig
from edge_agent.events import Event
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime import load_model
from edge_agent.stream.blocks import SampleBlock
from tests.conftest import REPO_ROOT, ListSink


def _stream(runner: Any, pipeline: ModelPipeline, rows: np.ndarray, block_rows: int) -> None:
    channels = tuple(runner.manifest.input.channels)
    for first in range(0, len(rows), block_rows):
        chunk = rows[first : first + block_rows]
        times = 1000.0 + first + np.arange(len(chunk), dtype=np.float64)
        pipeline.push(SampleBlock("engine", channels, chunk, times[0], timestamps=times))


def _comparable(event: Event) -> dict[str, Any]:
    payload = event.payload(0.0)
    payload.pop("latency_ms", None)  # a batch's share of its compute time, not a model output
    return payload


def test_one_big_block_gives_the_events_of_row_by_row_streaming() -> None:
    """Test that batched inference keeps every result, alarm and input health event, in order."""
    runner = load_model(REPO_ROOT / "models/cmapss-fd001-rul")
    reference = runner.manifest.input.features[0]
    rng = np.random.default_rng(11)
    n = 5 * runner.batch_size + 300  # several full batches and a partial one
    rows = np.asarray(reference.mean) + np.asarray(reference.std) * rng.normal(size=(n, 14))
    rows[400:520, 0] += 40 * np.asarray(reference.std)[0]  # s2 out of range, then back
    rows[::7] += 3 * np.asarray(reference.std)  # outliers that move the RUL about
    probe = ModelPipeline("d", "rul", runner, AlarmConfig(enabled=False), [ListSink()])
    _stream(runner, probe, rows, len(rows))
    ruls = [e.output["rul"] for e in probe.sinks[0].events if e.payload(0.0)["type"] == "result"]
    alarm = AlarmConfig(rul_below=float(np.median(ruls)), raise_count=2, window_count=3)

    streams = {}
    for block_rows in (1, len(rows)):
        sink = ListSink()
        pipeline = ModelPipeline("d", "rul", runner, alarm, [sink])
        _stream(runner, pipeline, rows, block_rows)
        streams[block_rows] = [_comparable(e) for e in sink.events]
    kinds = [e["type"] for e in streams[len(rows)]]
    assert kinds.count("result") == n - 39
    assert kinds.count("alarm") >= 4 and kinds.count("input_health") >= 3  # raised, cleared
    assert streams[len(rows)] == streams[1]
    results = 0
    for event in streams[len(rows)]:
        results += event["type"] == "result"
        # a result's own number; an alarm's, the result that caused it; input health's, the
        # results before the window it checked (it comes before that window's result)
        assert event["seq"] == results
