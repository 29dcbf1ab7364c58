"""The agent's models on one source share each window's spectra; other sources keep their own."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.agent import build_pipelines
from edge_agent.config import load_agent_config
from edge_agent.sim.vibration import CHANNELS, MachineConditions, generate
from edge_agent.sinks.jsonl import JsonlSink
from edge_agent.stream.blocks import SampleBlock
from tests.conftest import agent_config, read_jsonl

RATE = 25600.0
SOURCES = """
[[sources]]
kind = "simulator"
id = "motor"
[[sources]]
kind = "simulator"
id = "pump"
"""


def test_models_on_one_source_compute_each_window_once(tmp_path: Path) -> None:
    """Test that the fault and anomaly bundles on "motor" get one SpectraCache and, fed the same
    block, compute its one window's spectra once (one miss, every other step a hit), while the
    classifier on "pump" has its own cache and its results equal the shared ones."""
    models = [("vibration-fault", "motor"), ("vibration-anomaly", "motor")]
    config = agent_config(tmp_path, "dev", SOURCES, [*models, ("vibration-fault", "pump")])
    fault, anomaly, other = build_pipelines(load_agent_config(config), record=False)
    assert fault.spectra is anomaly.spectra and other.spectra is not fault.spectra
    samples = generate(MachineConditions(fault="bearing_outer"), 8192, RATE, seed=5)
    results = []
    for i, pipeline in enumerate((fault, anomaly, other)):
        sink = JsonlSink(tmp_path / f"{i}.jsonl")
        pipeline.sinks = [sink]
        block = SampleBlock(pipeline.source or "", CHANNELS, samples, 1.7e9, rate_hz=RATE)
        assert pipeline.push(block) == 1
        sink.close()
        results += [e for e in read_jsonl(tmp_path / f"{i}.jsonl") if e["type"] == "result"]
    # fault: spectrum (miss), envelope (hit); anomaly: stats, spectrum, envelope (hits)
    assert (fault.spectra.misses, fault.spectra.hits) == (1, 4)
    assert (other.spectra.misses, other.spectra.hits) == (1, 1)
    assert results[0]["label"] == results[2]["label"] == "bearing_outer"
    assert results[0]["probabilities"] == results[2]["probabilities"]
    assert np.isfinite(results[1]["score"])
