"""`[[sources]]`: where samples come from. Each source has an id that models bind to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field

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


class ReplaySourceConfig(StrictModel):
    kind: Literal["replay"]
    id: Identifier
    path: Path
    channels: list[str] | None = Field(default=None, description="Columns to read; default all.")
    time_column: str = "ts"
    sample_rate_hz: float | None = Field(default=None, gt=0)
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
