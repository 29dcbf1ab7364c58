"""Plugin sources through entry points, the simulator's fault schedule, and Edge TPU fallback."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge_agent.config.sources import FaultSchedule, PluginSourceConfig, SimulatorSourceConfig
from edge_agent.errors import ConfigError, RuntimeBackendError
from edge_agent.runtime import load_model
from edge_agent.sources import plugins
from edge_agent.sources.simulator import SimulatorSource
from tests.conftest import REPO_ROOT, register_plugin


def test_plugin_loads_through_entry_point(monkeypatch) -> None:
    """Test that a registered driver is built with its options and its blocks reach emit."""
    register_plugin(monkeypatch, "fake", "tests.edge_agent.sources.fake_driver:make")
    source = plugins.load_plugin(
        PluginSourceConfig(kind="plugin", id="acc", plugin="fake", options={"rows": 5})
    )
    blocks = []
    source.run(blocks.append, threading.Event())
    assert blocks[0].values.shape == (5, 2) and source.counters["blocks"] == 1


def test_missing_or_broken_plugin_is_a_config_error(monkeypatch) -> None:
    """Test that an unknown plugin name and a failing factory are readable config errors."""
    register_plugin(monkeypatch, "fake", "tests.no_such_module:make")
    with pytest.raises(ConfigError, match="no plugin 'other'"):
        plugins.load_plugin(PluginSourceConfig(kind="plugin", id="a", plugin="other"))
    with pytest.raises(ConfigError, match="plugin 'fake' failed"):
        plugins.load_plugin(PluginSourceConfig(kind="plugin", id="a", plugin="fake"))


def test_simulator_schedule_switches_fault_at_its_time() -> None:
    """Test that a scheduled fault starts at its simulated time and the stream stays continuous."""
    config = SimulatorSourceConfig(
        kind="simulator",
        id="m",
        sample_rate_hz=12800,
        block_samples=1280,
        realtime=False,
        duration_s=2.0,
        shaft_hz=25.0,
        schedule=[FaultSchedule(at_s=1.0, fault="imbalance")],
    )
    stream = SimulatorSource(config, start_time=1000.0)
    blocks = []
    stream.run(blocks.append, threading.Event())
    assert len(blocks) == 20 and [b.seq for b in blocks] == list(range(20))
    assert blocks[10].t0 == pytest.approx(1001.0)
    assert stream.counters["fault_set:imbalance"] == 1
    before = np.concatenate([b.values for b in blocks[:10]])
    after = np.concatenate([b.values for b in blocks[10:]])
    assert after[:, 0].std() > 3 * before[:, 0].std()  # strong 1x on the radial axis


def test_edgetpu_missing_is_clear_and_can_fall_back() -> None:
    """Test (no Edge TPU here) that asking for it fails with the install hint, or falls back."""
    with pytest.raises(RuntimeBackendError, match=r"libedgetpu\.so\.1.*libedgetpu1-std"):
        load_model(REPO_ROOT / "models/vibration-fault", edgetpu=True)
    runner = load_model(REPO_ROOT / "models/vibration-fault", edgetpu=True, edgetpu_fallback=True)
    assert runner.delegate is None and runner.backend == "ai_edge_litert"
