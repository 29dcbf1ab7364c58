"""The agent's models on one source share each window's spectra; other sources keep their own."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.agent import build_pipelines
from edge_agent.config import load_agent_config
from edge_agent.pipeline import ModelPipeline
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


def test_a_block_completing_several_windows_shares_every_one(tmp_path: Path) -> None:
    """Test that when one block completes three windows, the second model on the source finds
    all three windows' spectra (the cache keeps the block's windows, not just the latest), and
    each model's results equal those of a pipeline computing alone."""

    def pipelines(folder: Path, models: list[tuple[str, str]]) -> list[ModelPipeline]:
        folder.mkdir()
        config = agent_config(folder, "dev", SOURCES, models)
        return build_pipelines(load_agent_config(config), record=False)

    models = [("vibration-fault", "motor"), ("vibration-anomaly", "motor")]
    fault, anomaly = pipelines(tmp_path / "shared", models)
    alone = [pipelines(tmp_path / name, [(name, "motor")])[0] for name, _ in models]
    samples = generate(MachineConditions(fault="bearing_outer"), 16384 + 3 * 4096, RATE, seed=6)
    block = SampleBlock("motor", CHANNELS, samples[:16384], 1.7e9, rate_hz=RATE)
    outputs = []
    for i, pipeline in enumerate((fault, anomaly, *alone)):
        sink = JsonlSink(tmp_path / f"{i}.jsonl")
        pipeline.sinks = [sink]
        assert pipeline.push(block) == 3
        sink.close()
        lines = read_jsonl(tmp_path / f"{i}.jsonl")
        outputs.append([{k: e[k] for k in ("label", "score") if k in e} for e in lines])
    # fault: per window a spectrum miss and an envelope hit; anomaly: stats, spectrum and
    # envelope hits on each of the three windows
    assert (fault.spectra.misses, fault.spectra.hits) == (3, 3 + 9)
    assert outputs[:2] == outputs[2:]
    # the next blocks complete one window each: the cache lets the earlier ones go
    fault.sinks = anomaly.sinks = []
    for first in range(16384, len(samples) - 4096 + 1, 4096):
        chunk, t0 = samples[first : first + 4096], 1.7e9 + first / RATE
        later = SampleBlock("motor", CHANNELS, chunk, t0, rate_hz=RATE)
        assert fault.push(later) == anomaly.push(later) == 1
        assert len(fault.spectra) == 1
