"""`[[models]]`: which bundle runs on which stream, and how its results raise alarms."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from edge_agent.runtime.backends import BackendChoice
from edge_agent.schema import Identifier, StrictModel


class AlarmConfig(StrictModel):
    """N-of-M debounce with hysteresis: one noisy window never raises, a flapping one never spams.

    Raise when at least `raise_count` of the last `window_count` windows are abnormal; clear
    when at most `clear_count` of them are.
    """

    enabled: bool = True
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
