"""Building the agent's pipelines: one runner per bundle, however many sensors it serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.agent import build_pipelines
from edge_agent.config import load_agent_config
from edge_agent.sim.vibration import CHANNELS, MachineConditions, generate
from edge_agent.stream.blocks import SampleBlock
from tests.conftest import REPO_ROOT, ListSink


def test_bindings_of_one_bundle_share_its_runner_and_keep_their_own_state(tmp_path: Path) -> None:
    """Test that two sensors with the same model share one interpreter but not their windows."""
    fault, rul = REPO_ROOT / "models/vibration-fault", REPO_ROOT / "models/cmapss-fd001-rul"
    config = tmp_path / "agent.toml"
    config.write_text(
        'device_id = "d"\n'
        + "".join(
            f'[[sources]]\nkind = "simulator"\nid = "{s}"\nrealtime = false\n' for s in ("a", "b")
        )
        + f'[[models]]\nid = "fault-a"\nbundle = "{fault}"\nsource = "a"\n'
        + f'[[models]]\nid = "fault-b"\nbundle = "{fault}/"\nsource = "b"\n'
        + f'[[models]]\nid = "rul"\nbundle = "{rul}"\nsource = "a"\n'
    )
    pipelines = build_pipelines(load_agent_config(config), record=False)
    a, b, other = pipelines
    assert a.runner is b.runner and other.runner is not a.runner
    rate = a.runner.manifest.input.sample_rate_hz
    signal = generate(MachineConditions(fault="imbalance"), 20_000, rate, seed=3).astype(np.float64)
    sinks = {id(p): ListSink() for p in (a, b)}
    for p in (a, b):
        p.sinks = [sinks[id(p)]]
    # Interleaved, and b's stream starts later: its windows must not see a's samples.
    a.push(SampleBlock("a", CHANNELS, signal[:12_000], 10.0, rate_hz=rate))
    b.push(SampleBlock("b", CHANNELS, signal[4096:8192], 10.0 + 4096 / rate, rate_hz=rate))
    a.push(SampleBlock("a", CHANNELS, signal[12_000:], 10.0 + 12_000 / rate, rate_hz=rate))
    b.push(SampleBlock("b", CHANNELS, signal[8192:], 10.0 + 8192 / rate, rate_hz=rate))
    by_end = {e.window_end: e.output for e in sinks[id(a)].events if hasattr(e, "output")}
    of_b = [(e.window_end, e.output) for e in sinks[id(b)].events if hasattr(e, "output")]
    assert len(of_b) >= 2 and all(by_end[end] == output for end, output in of_b)
