"""The feature pipeline as data: parsing, composition, and identical results batch vs one-by-one."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from edge_agent.frontend.steps import FeaturePipeline, Step

STEPS = TypeAdapter(list[Step])


def _pipeline(raw: list[dict], rate: float | None = 1000.0) -> FeaturePipeline:
    return FeaturePipeline(STEPS.validate_python(raw), rate)


def test_standardize_per_channel_hand_worked() -> None:
    """Test that standardize subtracts and divides per channel, output float32."""
    pipe = _pipeline([{"op": "standardize", "mean": [1.0, 10.0], "std": [2.0, 5.0]}], None)
    out = pipe(np.array([[3.0, 20.0], [1.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.0, 2.0], [0.0, -2.0]])


def test_concat_channels_and_flat_shapes() -> None:
    """Test that concat joins branch outputs side by side or as one flat vector."""
    stats = [{"op": "stats", "names": ["rms", "peak"]}]
    bands = [{"op": "spectrum_bands", "n_bands": 2, "f_min": 0.0, "f_max": 400.0}]
    side = _pipeline([{"op": "concat", "axis": "channels", "branches": [stats, stats]}])
    flat = _pipeline([{"op": "concat", "axis": "flat", "branches": [stats, bands]}])
    window = np.random.default_rng(0).normal(size=(100, 3))
    assert side(window).shape == (2, 6)
    assert flat(window).shape == (2 * 3 + 2 * 3,)
    np.testing.assert_array_equal(flat(window)[:6], side(window)[:, :3].reshape(-1))


def test_concat_channels_rejects_unequal_rows() -> None:
    """Test that joining branches with different row counts side by side is a clear error."""
    pipe = _pipeline(
        [
            {
                "op": "concat",
                "axis": "channels",
                "branches": [
                    [{"op": "stats", "names": ["rms"]}],
                    [{"op": "stats", "names": ["rms", "peak"]}],
                ],
            }
        ]
    )
    with pytest.raises(ValueError, match="equal rows"):
        pipe(np.ones((10, 1)))


def test_unknown_step_and_unknown_key_rejected() -> None:
    """Test that a misspelt op or an extra parameter fails validation, naming it."""
    with pytest.raises(ValidationError, match="spectrum_band"):
        STEPS.validate_python([{"op": "spectrum_band"}])
    with pytest.raises(ValidationError, match="n_bins"):
        STEPS.validate_python([{"op": "remove_mean", "n_bins": 3}])


def test_bad_parameters_rejected() -> None:
    """Test that zero std, reversed carrier bands and log spacing from 0 Hz are rejected."""
    with pytest.raises(ValidationError, match="std"):
        STEPS.validate_python([{"op": "standardize", "mean": [0.0], "std": [0.0]}])
    with pytest.raises(ValidationError, match="carrier_hz"):
        STEPS.validate_python(
            [
                {
                    "op": "envelope_bands",
                    "carrier_hz": [500, 100],
                    "n_bands": 4,
                    "f_min": 1,
                    "f_max": 10,
                }
            ]
        )
    with pytest.raises(ValidationError, match="f_min > 0"):
        STEPS.validate_python(
            [{"op": "spectrum_bands", "n_bands": 4, "f_min": 0, "f_max": 10, "spacing": "log"}]
        )


def test_spectral_step_needs_sample_rate() -> None:
    """Test that a spectral step on per-cycle data (no sample rate) says what is missing."""
    pipe = _pipeline([{"op": "spectrum_bands", "n_bands": 2, "f_min": 0, "f_max": 1}], None)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        pipe(np.ones((8, 1)))


def test_batch_equals_one_by_one_bit_for_bit() -> None:
    """Test that batch() gives exactly the bytes of calling the pipeline window by window."""
    pipe = _pipeline(
        [
            {"op": "remove_mean"},
            {
                "op": "concat",
                "axis": "channels",
                "branches": [
                    [
                        {
                            "op": "spectrum_bands",
                            "n_bands": 8,
                            "f_min": 1,
                            "f_max": 400,
                            "spacing": "log",
                        }
                    ],
                    [
                        {
                            "op": "envelope_bands",
                            "carrier_hz": [100, 400],
                            "n_bands": 8,
                            "f_min": 1,
                            "f_max": 50,
                        }
                    ],
                ],
            },
        ]
    )
    windows = np.random.default_rng(1).normal(size=(5, 256, 3)).astype(np.float32)
    batch = pipe.batch(windows)
    for i, window in enumerate(windows):
        assert pipe(window.copy()).tobytes() == batch[i].tobytes()


def test_output_shape_from_steps() -> None:
    """Test that output_shape predicts the model input shape without real data."""
    pipe = _pipeline([{"op": "stats"}, {"op": "flatten"}])
    assert pipe.output_shape(window=50, n_channels=3) == (12,)


@pytest.mark.parametrize(
    "raw",
    [
        [
            {"op": "standardize", "mean": [1.0, -2.0, 0.5], "std": [0.3, 7.0, 1.1]},
            {"op": "flatten"},
        ],
        [{"op": "standardize", "mean": [[0.1, 0.2, 0.3]] * 40, "std": [[3.0, 0.7, 1.9]] * 40}],
    ],
)
def test_elementwise_pipelines_batch_in_one_pass_with_the_same_bits(raw: list[dict]) -> None:
    """Test that a per-channel or per-element standardize batch is vectorised and bit-identical."""
    pipe = _pipeline(raw, None)
    assert pipe._run_many is not None  # the vectorised path is the one under test
    rng = np.random.default_rng(3)
    windows = (rng.normal(size=(300, 40, 3)) * 1e3 + 1e4).astype(np.float64)  # float64 input
    batch = pipe.batch(list(windows))  # views, as the streaming windower hands them over
    assert batch.dtype == np.float32
    for i, window in enumerate(windows):
        assert pipe(window).tobytes() == batch[i].tobytes()


def test_pipelines_with_reductions_are_batched_window_by_window() -> None:
    """Test that a pipeline with a reducing step takes the per-window path (no vectorised one)."""
    pipe = _pipeline([{"op": "remove_mean"}, {"op": "stats"}])
    assert pipe._run_many is None
    windows = np.random.default_rng(4).normal(size=(4, 64, 2))
    assert pipe.batch(windows).shape == (4, 4, 2)
