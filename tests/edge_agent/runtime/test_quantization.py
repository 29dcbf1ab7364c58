"""Quantisation adapters, checked on hand-worked numbers."""

from __future__ import annotations

import numpy as np

from edge_agent.manifest import TensorSpec
from edge_agent.runtime.quantization import dequantize, quantize, spec_mismatches

INT8 = TensorSpec(shape=[1, 4], dtype="int8", scale=0.5, zero_point=-3)


def test_quantize_rounds_half_away_from_zero_and_saturates() -> None:
    """Test q = round(x / 0.5) - 3 with ties away from zero, clipped to [-128, 127]."""
    q = quantize(np.array([0.25, -0.25, 1.0, 100.0, -100.0]), INT8)
    # 0.25/0.5 = 0.5 -> 1 -> -2; -0.5 -> -1 -> -4; 2 -> -1; 200-3 -> 127; -200-3 -> -128
    np.testing.assert_array_equal(q, [-2, -4, -1, 127, -128])
    assert q.dtype == np.int8


def test_dequantize_inverts_on_grid_points() -> None:
    """Test that x = 0.5 * (q + 3) and quantize(dequantize(q)) == q."""
    q = np.array([-128, -3, 0, 127], dtype=np.int8)
    x = dequantize(q, INT8)
    np.testing.assert_array_equal(x, [-62.5, 0.0, 1.5, 65.0])
    np.testing.assert_array_equal(quantize(x, INT8), q)


def test_float_tensors_pass_through() -> None:
    """Test that a float32 tensor (scale 0) is only cast, never scaled."""
    spec = TensorSpec(shape=[2], dtype="float32", scale=0.0, zero_point=0)
    np.testing.assert_array_equal(quantize(np.array([1.5, -2.0]), spec), [1.5, -2.0])


def test_spec_mismatches_lists_each_difference() -> None:
    """Test that each differing field is reported with both values."""
    other = TensorSpec(shape=[1, 5], dtype="uint8", scale=0.25, zero_point=0)
    problems = spec_mismatches(INT8, other)
    assert problems == [
        "shape [1, 5] (manifest [1, 4])",
        "dtype uint8 (manifest int8)",
        "scale 0.25 (manifest 0.5)",
        "zero_point 0 (manifest -3)",
    ]
    assert spec_mismatches(INT8, INT8) == []
