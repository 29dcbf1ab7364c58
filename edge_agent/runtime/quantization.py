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


class TensorCodec:
    """Float <-> tensor values for one tensor, with its constants worked out once (hot path)."""

    def __init__(self, spec: TensorSpec) -> None:
        self.dtype = np.dtype(spec.dtype)
        self.passthrough = spec.scale == 0 or self.dtype.kind == "f"
        self.scale = spec.scale
        self.zero_point = spec.zero_point
        if not self.passthrough:
            info = np.iinfo(self.dtype)
            self.low, self.high = info.min, info.max
        self._scale32 = np.float32(spec.scale)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Ties round away from zero and values saturate, as TFLite's own quantize does."""
        if self.passthrough:
            return values.astype(self.dtype)
        scaled = values / self.scale
        scaled += np.copysign(0.5, scaled)
        np.trunc(scaled, out=scaled)
        scaled += self.zero_point
        np.clip(scaled, self.low, self.high, out=scaled)
        return scaled.astype(self.dtype)

    def decode(self, values: np.ndarray) -> np.ndarray:
        if self.passthrough:
            return values.astype(np.float32)
        out = values.astype(np.float32)
        out -= self.zero_point
        out *= self._scale32
        return out


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return TensorCodec(spec).encode(values)


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return TensorCodec(spec).decode(values)


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
