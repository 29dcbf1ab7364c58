"""`[[sinks]]`: where results and alarms go. The pipeline never knows which transport it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field

from edge_agent.config.base import Section


class JsonlSink(Section):
    kind: Literal["jsonl"]
    path: Path = Field(default=Path("-"), description="'-' for standard output.")
    fsync: bool = Field(default=False, description="fsync after every line (durable, slower).")


SinkConfig = Annotated[Union[JsonlSink], Field(discriminator="kind")]  # noqa: UP007
