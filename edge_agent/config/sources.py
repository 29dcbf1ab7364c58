"""`[[sources]]`: where samples come from. Each source has an id that models bind to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from edge_agent.recording import ReadOptions, zone
from edge_agent.schema import Identifier, StrictModel


class FaultSchedule(StrictModel):
    """Switch the simulated machine to `fault` at `at_s` seconds of simulated time."""

    at_s: float = Field(ge=0)
    fault: str
    severity: float = Field(default=1.0, ge=0, le=1)


class SimulatorSourceConfig(StrictModel):
    kind: Literal["simulator"]
    id: Identifier
    sample_rate_hz: float = Field(default=25600.0, gt=0)
    block_samples: int = Field(default=2560, ge=1, description="Samples per emitted block.")
    shaft_hz: float = Field(default=30.0, gt=0)
    fault: str = "healthy"
    severity: float = Field(default=1.0, ge=0, le=1)
    seed: int = 0
    realtime: bool = True
    duration_s: float | None = Field(default=None, gt=0, description="Stop after this long.")
    schedule: list[FaultSchedule] = []


class RecordingFormat(StrictModel):
    """How a recording (CSV/NPZ) is read and timed: the replay source and training's table
    dataset share these keys and one reader (edge_agent/recording.py)."""

    delimiter: str | None = Field(
        default=None,
        min_length=1,
        max_length=1,
        description="CSV field separator; omitted: sniffed from the header and first lines.",
    )
    time: Literal["column", "index"] = Field(
        default="column",
        description="'column': times from time_column; 'index': row i at i / sample_rate_hz.",
    )
    time_column: str | None = Field(
        default="ts", description="Unix seconds or date-times (ISO-8601 or time_format)."
    )
    time_format: str | None = Field(
        default=None, description="strptime format of the time column, e.g. '%d.%m.%Y %H:%M'."
    )
    timezone: str = Field(default="UTC", description="IANA zone of date-times without an offset.")
    sample_rate_hz: float | None = Field(default=None, gt=0)
    max_gap: float | None = Field(
        default=None,
        gt=0,
        description="Seconds: longer time steps split the recording, shorter ones are bridged; "
        "omitted: 1.5 sample periods.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _time_rules(self) -> RecordingFormat:
        if self.time == "index" and self.sample_rate_hz is None:
            raise ValueError("time = 'index' needs sample_rate_hz")
        if self.max_gap is not None and self.time_source() is None:
            raise ValueError("max_gap needs times from a time_column (time = 'column')")
        return self

    def time_source(self) -> str | None:
        """The column read as time, or None (time = 'index', or no time column)."""
        return self.time_column if self.time == "column" else None

    def read_options(self) -> ReadOptions:
        return ReadOptions(self.delimiter, self.time_format, self.timezone)


class ReplaySourceConfig(RecordingFormat):
    kind: Literal["replay"]
    id: Identifier
    path: Path
    channels: list[str] | None = Field(
        default=None,
        description="Columns to read; default: those of the models bound to this source.",
    )
    speed: float | None = Field(
        default=None,
        gt=0,
        description="1 = real time, 10 = ten times faster, omitted = as fast as possible.",
    )
    block_samples: int = Field(default=4096, ge=1)
    loop: bool = False


class MqttSourceConfig(StrictModel):
    kind: Literal["mqtt"]
    id: Identifier
    topic: str = Field(min_length=1, description="Subscription filter; wildcards allowed.")
    qos: Literal[0, 1, 2] = 1


class PluginSourceConfig(StrictModel):
    kind: Literal["plugin"]
    id: Identifier
    plugin: str = Field(description="Name of an `edge_agent.sources` entry point.")
    options: dict[str, object] = {}


SourceConfig = Annotated[
    Union[SimulatorSourceConfig, ReplaySourceConfig, MqttSourceConfig, PluginSourceConfig],  # noqa: UP007
    Field(discriminator="kind"),
]
