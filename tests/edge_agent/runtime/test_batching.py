"""Batched inference: several windows per invoke() give exactly the outputs of one at a time."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.runtime import load_model
from edge_agent.runtime.model import MAX_BATCH
from tests.conftest import REPO_ROOT

BUNDLES = ("vibration-fault", "vibration-anomaly", "cmapss-fd001-rul")


def _inputs(runner, n: int) -> np.ndarray:
    """Model inputs spread over the input tensor's whole int8 range, clipping included."""
    scale, zero_point = runner.input_spec.scale, runner.input_spec.zero_point
    low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
    shape = (n, *runner.input_spec.shape[1:])
    return np.random.default_rng(7).uniform(1.2 * low, 1.2 * high, size=shape).astype(np.float32)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_batched_outputs_equal_one_example_at_a_time(bundle: str) -> None:
    """Test that predict_many over odd and over-MAX_BATCH sizes equals predict() row by row."""
    runner = load_model(REPO_ROOT / "models" / bundle)
    assert runner.batchable  # the reference bundles keep a free batch axis
    inputs = _inputs(runner, MAX_BATCH + 37)
    single = np.stack([runner.predict(row) for row in inputs])
    for n in (len(inputs), 5, 1):
        assert runner.predict_many(inputs[:n]).tobytes() == single[:n].tobytes()
    assert runner.predict(inputs[3]).tobytes() == single[3].tobytes()  # after a resize back


def test_a_fixed_batch_axis_is_run_one_example_at_a_time() -> None:
    """Test that a runner that cannot batch still answers predict_many row by row."""
    runner = load_model(REPO_ROOT / "models" / "cmapss-fd001-rul")
    inputs = _inputs(runner, 9)
    expected = runner.predict_many(inputs)
    runner.batchable = False
    assert runner.predict_many(inputs).tobytes() == expected.tobytes()
    assert runner._batch == 1
