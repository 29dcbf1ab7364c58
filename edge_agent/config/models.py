"""`[[models]]`: which bundle runs on which stream, and how its results raise alarms."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge_agent.runtime.backends import BackendChoice
from edge_agent.schema import Identifier, StrictModel


class AlarmConfig(StrictModel):
    """Debounce with hysteresis: one noisy window never raises, a flapping one never spams.

    Rule `n_of_m`: raise when at least `raise_count` of the last `window_count` windows are
    abnormal. Rule `consecutive`: raise when the last `raise_count` windows in a row are
    abnormal. Either way, clear when at most `clear_count` of the last `window_count` are.
    """

    enabled: bool = True
    rule: Literal["n_of_m", "consecutive"] = Field(
        default="n_of_m", description="How abnormal windows raise the alarm (see above)."
    )
    raise_count: int = Field(default=3, ge=1)
    clear_count: int = Field(default=0, ge=0)
    window_count: int = Field(default=5, ge=1)
    normal_labels: list[str] = Field(
        default=["healthy", "normal"], description="Classification labels that are not faults."
    )
    rul_below: float = Field(default=30.0, gt=0, description="RUL under this is abnormal.")
    critical_factor: float = Field(
        default=2.0, gt=1, description="Anomaly score above threshold x this is critical."
    )
    rul_critical_below: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _counts(self) -> AlarmConfig:
        if not self.clear_count < self.raise_count <= self.window_count:
            raise ValueError(
                "need clear_count < raise_count <= window_count, got "
                f"{self.clear_count}, {self.raise_count}, {self.window_count}"
            )
        return self


class InputHealthConfig(StrictModel):
    """Per-channel checks of the raw input against the bundle's training reference. Each
    condition is raised after `persist_windows` checked windows in a row and cleared after as
    many without it; checked windows do not overlap."""

    enabled: bool = Field(default=True, description="Only where the manifest has a reference.")
    drift_z: float = Field(
        default=3.0,
        gt=0,
        description="Drift: mean over the horizon minus the training mean, in training stds.",
    )
    drift_horizon_windows: int = Field(default=4, ge=1)
    stuck_ratio: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        description="Stuck: a window's std at most this fraction of the training window std.",
    )
    range_margin: float = Field(
        default=0.1, ge=0, description="Training range widened by this share of its span."
    )
    out_of_range_fraction: float = Field(
        default=0.01, ge=0, lt=1, description="Share of a window's samples beyond the range."
    )
    saturation_fraction: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Share of a window's samples repeating an extreme at the clipping edge.",
    )
    full_scale: dict[str, tuple[float, float]] = Field(
        default={},
        description="Model channel -> the sensor's (low, high) limits where known: a reading "
        "pinned there is saturated even inside the training range.",
    )
    persist_windows: int = Field(default=3, ge=1)


class ModelBinding(StrictModel):
    bundle: Path
    source: Identifier = Field(description="Id of the source whose samples this model reads.")
    id: Identifier | None = Field(default=None, description="Topic id; default the manifest name.")
    channel_map: dict[str, str] = Field(
        default={}, description="Model channel -> source channel, where the names differ."
    )
    backend: BackendChoice | None = None
    edgetpu: bool = False
    alarm: AlarmConfig = AlarmConfig()
    input_health: InputHealthConfig = InputHealthConfig()
