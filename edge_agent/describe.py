"""Human and machine summaries of a bundle: the one `inspect` behind `edge-agent check-model`
and `edge-train inspect`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_agent.runtime.backends import BackendChoice
from edge_agent.runtime.model import ModelRunner, load_model
from edge_agent.signing import TrustedKeys, signer


def inspect(
    bundle: str | Path,
    backend: BackendChoice = "auto",
    num_threads: int = 1,
    as_json: bool = False,
    trusted: TrustedKeys | None = None,
) -> str:
    """Verify a bundle (signature when keys are given, hash, tensors, golden test) and describe
    it."""
    runner = load_model(bundle, backend=backend, num_threads=num_threads, trusted=trusted)
    assert runner.golden_error is not None  # load_model ran the golden test
    if as_json:
        return json.dumps(summary_json(runner, runner.golden_error), indent=1)
    return "\n".join(summary_lines(runner, runner.golden_error))


def summary_json(runner: ModelRunner, golden_error: float) -> dict[str, Any]:
    summary = runner.manifest.model_dump(mode="json", by_alias=True, exclude={"golden"})
    summary["verified"] = {
        "backend": runner.backend,
        "delegate": runner.delegate,
        "golden_max_error": golden_error,
        "model_bytes": len(runner.bundle.model),
        "signature": signature_state(runner),
    }
    return summary


def summary_lines(runner: ModelRunner, golden_error: float) -> list[str]:
    manifest = runner.manifest
    spec = manifest.input
    rate = f"{spec.sample_rate_hz:g} Hz" if spec.sample_rate_hz else "per cycle"
    lines = [
        f"{manifest.name} {manifest.version}  task={manifest.task}  created {manifest.created_at}",
        f"  {manifest.description}",
        f"  input    {len(spec.channels)} channels {spec.channels} at {rate}, "
        f"window {spec.window}, hop {spec.hop}"
        + (f", max_gap {spec.max_gap:g} s" if spec.max_gap is not None else ""),
        f"  features {' -> '.join(step.op for step in spec.features) or '(raw window)'}",
    ]
    if spec.baseline is not None:
        lines.append(f"  baseline per stream, fitted on its first {spec.baseline.samples} samples")
    if manifest.task == "classification":
        lines.append(f"  labels   {manifest.output.labels}")  # type: ignore[union-attr]
    else:
        lines.append(f"  output   {manifest.output.model_dump()}")
    for name, tensor in (("input", manifest.tensors.input), ("output", manifest.tensors.output)):
        lines.append(
            f"  tensor   {name} {tensor.shape} {tensor.dtype} scale={tensor.scale:.6g} "
            f"zero_point={tensor.zero_point}"
        )
    if manifest.metrics is None:
        lines.append("  metrics  none (imported without held-out figures)")
    else:
        lines.append(f"  metrics  on {manifest.metrics.evaluated_on}")
        for key, pair in manifest.metrics.values.items():
            lines.append(
                f"           {key:18s} float {pair.float_model:.4f}   int8 {pair.int8_model:.4f}"
            )
    if manifest.provenance.kind == "imported":
        source = manifest.provenance.source  # type: ignore[union-attr]
        lines.append(f"  imported from {source.file} (sha256 {source.sha256[:16]}...)")
    lines.append(f"  model    {len(runner.bundle.model):,} bytes sha256 {manifest.model_sha256}")
    where = runner.backend + (f" + {runner.delegate}" if runner.delegate else "")
    lines.append(f"  verified on {where}: hash ok, tensors ok, golden max error {golden_error:.3g}")
    lines.append(f"  signature {signature_state(runner)}")
    return lines


def signature_state(runner: ModelRunner) -> str:
    """Said plainly: verified (by which key), present but not checked, or absent."""
    bundle = runner.bundle
    if bundle.signed_by is not None:
        return f"verified: key {bundle.signed_by}"
    claimed = signer(bundle.path)
    if claimed is None:
        return "none: unsigned bundle (a device with trusted keys refuses it)"
    return f"present (key {claimed}) but not verified: give --public-key"
