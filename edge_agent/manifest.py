"""The model bundle's manifest: every number the device needs to run a model, as a strict schema.

`python -m edge_agent.manifest` prints the JSON Schema, committed as
docs/schemas/manifest.schema.json.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal, Union

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from edge_agent.frontend.steps import FeaturePipeline, Step
from edge_agent.schema import Identifier, StrictModel

SCHEMA_VERSION = 1

ChannelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
SemVer = Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ChannelReference(StrictModel):
    """One channel's raw samples in the training data: what the device's input health checks
    compare against (drift, stuck sensor, out of range, saturation)."""

    mean: float
    std: float = Field(ge=0)
    min: float
    max: float
    window_std: float = Field(
        ge=0, description="Median standard deviation within one training window."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ChannelReference:
        if self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self


class InputSpec(StrictModel):
    channels: list[ChannelName] = Field(
        min_length=1, description="Channel names in the order the model expects them."
    )
    sample_rate_hz: float | None = Field(
        gt=0, description="Samples per second; null for per-cycle (event-indexed) data."
    )
    window: int = Field(ge=1, description="Samples per window.")
    hop: int = Field(ge=1, description="Samples between consecutive window starts.")
    features: list[Step] = Field(
        description="Front-end steps from a (window, channels) array to the model input."
    )
    reference: dict[ChannelName, ChannelReference] | None = Field(
        default=None,
        description="Per-channel statistics of the training samples; without it the device "
        "runs no input health checks for this model.",
    )

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"channel names must be unique, got {value}")
        return value

    @model_validator(mode="after")
    def _reference_covers_channels(self) -> InputSpec:
        if self.reference is not None and set(self.reference) != set(self.channels):
            raise ValueError(
                f"reference channels {sorted(self.reference)} differ from {sorted(self.channels)}"
            )
        return self

    def pipeline(self) -> FeaturePipeline:
        return FeaturePipeline(self.features, self.sample_rate_hz)


class ClassificationOutput(StrictModel):
    labels: list[Identifier] = Field(min_length=2, description="Class names in output order.")


class AnomalyOutput(StrictModel):
    score: Literal["reconstruction_mse"] = Field(
        description="mean((model_input - model_output)^2) over all input elements."
    )
    threshold: float = Field(gt=0, description="Scores above this are anomalous.")
    threshold_quantile: float = Field(
        gt=0, lt=1, description="Quantile of held-out normal scores the threshold was set at."
    )


class RulOutput(StrictModel):
    units: Literal["cycles", "hours", "days"]
    cap: float = Field(gt=0, description="Training targets were clipped at this value.")


TaskOutput = Union[ClassificationOutput, AnomalyOutput, RulOutput]  # noqa: UP007
_OUTPUT_FOR_TASK = {
    "classification": ClassificationOutput,
    "anomaly": AnomalyOutput,
    "rul": RulOutput,
}


class TensorSpec(StrictModel):
    shape: list[int] = Field(min_length=1)
    dtype: Literal["int8", "uint8", "int16", "float32"]
    scale: float = Field(ge=0, description="Real value = scale * (q - zero_point); 0 for float.")
    zero_point: int


class Tensors(StrictModel):
    input: TensorSpec
    output: TensorSpec


class MetricPair(StrictModel):
    float_model: float = Field(alias="float")
    int8_model: float = Field(alias="int8")

    model_config = ConfigDict(populate_by_name=True)  # merged with StrictModel's


class Metrics(StrictModel):
    evaluated_on: str = Field(description="Held-out data the figures come from.")
    values: dict[str, MetricPair]


class Golden(StrictModel):
    """A model input and the output the exported model gave for it: a smoke test after load."""

    input: list[float] | list[list[float]]
    output: list[float]
    atol: float = Field(gt=0)


class DatasetInfo(StrictModel):
    name: str
    fingerprint: Sha256


class Provenance(StrictModel):
    libraries: dict[str, str]
    dataset: DatasetInfo
    seed: int
    config: str = Field(description="The training configuration file, verbatim.")


class Manifest(StrictModel):
    schema_version: Literal[1]
    name: Identifier
    version: SemVer
    task: Literal["classification", "anomaly", "rul"]
    description: str = ""
    created_at: datetime
    input: InputSpec
    output: TaskOutput
    tensors: Tensors
    metrics: Metrics
    model_sha256: Sha256
    golden: Golden
    provenance: Provenance

    @model_validator(mode="after")
    def _output_matches_task(self) -> Manifest:
        expected = _OUTPUT_FOR_TASK[self.task]
        if not isinstance(self.output, expected):
            raise ValueError(f"task '{self.task}' needs output fields of {expected.__name__}")
        if self.task == "classification":
            n_labels = len(self.output.labels)  # type: ignore[union-attr]
            if self.tensors.output.shape[-1] != n_labels:
                raise ValueError(
                    f"output tensor has {self.tensors.output.shape[-1]} values "
                    f"but {n_labels} labels"
                )
        return self


def json_schema() -> dict:
    return Manifest.model_json_schema(by_alias=True)


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
