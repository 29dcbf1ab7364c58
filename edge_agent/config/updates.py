"""`[updates]`: installing new bundles on a running device (docs/bundle.md#updates)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge_agent.schema import StrictModel


class UpdatesConfig(StrictModel):
    enabled: bool = Field(
        default=False,
        description="Keep bundles in a store under the state directory and accept `update`, "
        "`approve` and `rollback` commands. The configured `bundle` seeds the store; afterwards "
        "the store's current version runs (a newer configured bundle is installed over it).",
    )
    store_dir: Path | None = Field(default=None, description="Default: <state dir>/models.")
    watch_dir: Path | None = Field(
        default=None,
        description="Bundle folders moved in here are installed like an `update` command.",
    )
    shadow_windows: int = Field(
        default=20, ge=1, description="Windows both models score before a promotion."
    )
    min_agreement: float = Field(
        default=0.9, ge=0, le=1, description="Share of windows whose decisions must agree."
    )
    approval: Literal["auto", "manual"] = Field(
        default="auto", description="manual: wait for an `approve` command after the shadow run."
    )
    max_download_mb: float = Field(default=64.0, gt=0)
    download_timeout_s: float = Field(default=30.0, gt=0)
