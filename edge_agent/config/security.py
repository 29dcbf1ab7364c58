"""`[security]`: which keys a device accepts model bundles from."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edge_agent.schema import StrictModel


class SecurityConfig(StrictModel):
    trusted_keys: list[Path] = Field(
        default=[],
        description="Ed25519 public keys (PEM, from `edge-train keygen`). When any is given, "
        "every bundle must carry a valid signature by one of them, must not be expired, and "
        "its version must not go back (docs/bundle.md#signing).",
    )
    versions_file: Path | None = Field(
        default=None,
        description="Where the highest accepted version per model is kept for the anti-rollback "
        "check; default: models/accepted.json in the state directory.",
    )
