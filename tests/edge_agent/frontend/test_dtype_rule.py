"""One dtype rule for samples entering the front end: the agent's features equal training's bit
for bit on a real recording whose text holds more digits than float32."""

from __future__ import annotations

import numpy as np
from pydantic import TypeAdapter

from edge_agent.frontend.steps import FeaturePipeline, Step, compile_steps
from edge_agent.recording import read_columns
from tests.conftest import REPO_ROOT
from training.trainer import _features

NAB = REPO_ROOT.parent / "shared" / "data" / "nab" / "ambient_temperature_system_failure.csv"


def test_agent_and_training_features_are_bit_identical_on_real_data() -> None:
    """Test NAB ambient temperature (text values like 69.880835) in 24-sample windows through a
    standardise + flatten front end: the agent's path (float64 samples as parsed) and training's
    (float32 windows as stored) give identical model inputs, while computing on the parsed
    float64 samples directly would not (so the rule is what makes them equal)."""
    values = read_columns(NAB, ["value"], [])["value"]
    windows = np.lib.stride_tricks.sliding_window_view(values, 24)[::12][..., None]
    steps = TypeAdapter(list[Step]).validate_python(
        [
            {"op": "standardize", "mean": [float(values.mean())], "std": [float(values.std())]},
            {"op": "flatten"},
        ]
    )
    agent = FeaturePipeline(steps, None)
    on_device = np.stack([agent(w) for w in windows])
    in_training = _features(steps, windows.astype(np.float32), None).astype(np.float32)
    assert on_device.dtype == in_training.dtype == np.float32
    assert np.array_equal(on_device, in_training)
    unrounded = np.stack([compile_steps(steps, None)(w) for w in windows]).astype(np.float32)
    assert not np.array_equal(unrounded, in_training)
