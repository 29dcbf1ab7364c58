"""Small pure functions between float arrays and a quantized interpreter's tensors.

Only this module knows about scale and zero point; everything upstream and downstream sees floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.manifest import TensorSpec

_DTYPE_NAMES = {
    np.dtype(np.int8): "int8",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.int16): "int16",
    np.dtype(np.float32): "float32",
}


def tensor_spec(detail: dict[str, Any]) -> TensorSpec:
    """The manifest's view of one interpreter tensor detail."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    return TensorSpec(
        shape=[int(d) for d in detail["shape"]],
        dtype=_DTYPE_NAMES.get(dtype, str(dtype)),  # type: ignore[arg-type]
        scale=float(scale),
        zero_point=int(zero_point),
    )


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float to the tensor's integers; ties round away from zero and values saturate (TFLite)."""
    dtype = np.dtype(spec.dtype)
    if spec.scale == 0 or dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    scaled = values / spec.scale
    q = np.trunc(scaled + np.copysign(0.5, scaled)) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.scale == 0 or np.dtype(spec.dtype).kind == "f":
        return values.astype(np.float32)
    return ((values.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)).astype(
        np.float32
    )


def spec_mismatches(expected: TensorSpec, actual: TensorSpec) -> list[str]:
    """Human-readable differences between the manifest's tensor and the model's."""
    problems = []
    if list(expected.shape) != list(actual.shape):
        problems.append(f"shape {actual.shape} (manifest {expected.shape})")
    if expected.dtype != actual.dtype:
        problems.append(f"dtype {actual.dtype} (manifest {expected.dtype})")
    if not np.isclose(expected.scale, actual.scale, rtol=1e-6, atol=0.0):
        problems.append(f"scale {actual.scale!r} (manifest {expected.scale!r})")
    if expected.zero_point != actual.zero_point:
        problems.append(f"zero_point {actual.zero_point} (manifest {expected.zero_point})")
    return problems
