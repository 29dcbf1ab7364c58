"""The model bundle's manifest: every number the device needs to run a model, as a strict schema.

`python -m edge_agent.manifest` prints the JSON Schema, committed as
docs/schemas/manifest.schema.json.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from edge_agent.frontend.baseline import BaselineSpec
from edge_agent.frontend.spectra import SpectraCache
from edge_agent.frontend.steps import FeaturePipeline, Step
from edge_agent.schema import Identifier, StrictModel

SCHEMA_VERSION = 1

ChannelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
SemVer = Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def version_key(version: SemVer) -> tuple[int, ...]:
    """MAJOR.MINOR.PATCH as numbers, so that 1.10.0 sorts after 1.9.0."""
    return tuple(int(part) for part in version.split("."))


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
    max_gap: float | None = Field(
        default=None,
        gt=0,
        description="Seconds: the longest time step training bridged inside a window (its "
        "dataset's max_gap); the device's windower uses it when the source sets none. Null: "
        "1.5 sample periods.",
    )
    features: list[Step] = Field(
        description="Front-end steps from a (window, channels) array to the model input."
    )
    baseline: BaselineSpec | None = Field(
        default=None,
        description="Standardise each channel by its mean and std over the first samples of "
        "each stream, before `features`; windows ending before then are not scored.",
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

    def pipeline(self, spectra: SpectraCache | None = None) -> FeaturePipeline:
        return FeaturePipeline(self.features, self.sample_rate_hz, spectra)


class ClassificationOutput(StrictModel):
    labels: list[Identifier] = Field(min_length=2, description="Class names in output order.")


ScoreName = Literal["reconstruction_mse", "reconstruction_mae", "reconstruction_max_error"]


class Smoothing(StrictModel):
    """Smoothing of successive window scores of one stream before the threshold: `ewma`
    (s = alpha * score + (1 - alpha) * s_prev, starting at the first score) or `moving_mean`
    (mean of the last `windows` scores, fewer at the start). It restarts with the stream's
    windows after a gap, as training restarts it at each segment."""

    method: Literal["ewma", "moving_mean"]
    alpha: float | None = Field(
        default=None, gt=0, le=1, description="Weight of the newest score (ewma)."
    )
    windows: int | None = Field(default=None, ge=1, description="Scores averaged (moving_mean).")

    @model_validator(mode="after")
    def _parameter_fits(self) -> Smoothing:
        needed, other = ("alpha", "windows") if self.method == "ewma" else ("windows", "alpha")
        if getattr(self, needed) is None:
            raise ValueError(f"smoothing method '{self.method}' needs {needed}")
        if getattr(self, other) is not None:
            raise ValueError(f"smoothing method '{self.method}' takes no {other}")
        return self


class AnomalyOutput(StrictModel):
    score: ScoreName = Field(
        description="Reconstruction error over all input elements: mean squared "
        "(`reconstruction_mse`), mean absolute (`reconstruction_mae`) or largest absolute "
        "(`reconstruction_max_error`)."
    )
    threshold: float = Field(gt=0, description="(Smoothed) scores above this are anomalous.")
    threshold_quantile: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Quantile of normal scores the threshold was set at (threshold_source "
        "`quantile`).",
    )
    threshold_margin: float = Field(
        default=1.0,
        gt=0,
        description="The threshold is the quantile times this factor (threshold_source "
        "`quantile`).",
    )
    threshold_source: Literal["quantile", "given"] = Field(
        default="quantile",
        description="How the threshold was set: at `threshold_quantile` of normal scores, or "
        "`given` as a number (training config or import).",
    )
    calibrated_on: Literal["validation", "train+validation"] | None = Field(
        default=None,
        description="Normal windows whose scores set a quantile threshold (null in bundles "
        "made before this was recorded, or imported).",
    )
    calibration_windows: int | None = Field(
        default=None, ge=1, description="How many (smoothed) normal scores set the threshold."
    )
    smoothing: Smoothing | None = Field(
        default=None,
        description="Applied by the agent per stream before the threshold; the threshold was "
        "calibrated on scores smoothed the same way.",
    )

    @model_validator(mode="after")
    def _quantile_matches_source(self) -> AnomalyOutput:
        if self.threshold_source == "quantile" and self.threshold_quantile is None:
            raise ValueError("threshold_source 'quantile' needs threshold_quantile")
        if self.threshold_source == "given" and (
            self.threshold_quantile is not None or self.threshold_margin != 1.0
        ):
            raise ValueError("a given threshold has no threshold_quantile or threshold_margin")
        return self


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


# The backend names of edge_agent.runtime.backends (a test checks that the two agree).
InterpreterName = Literal["ai_edge_litert", "tflite_runtime", "tensorflow"]


class Golden(StrictModel):
    """A model input and the output the exported model gave for it: a smoke test after load."""

    input: list[float] | list[list[float]]
    output: list[float] | list[list[float]] = Field(
        description="As the model gives it, without the batch axis (2-D for a sequence "
        "autoencoder)."
    )
    atol: float = Field(gt=0, description="Largest max-abs error accepted by default.")
    atol_by_backend: dict[InterpreterName, Annotated[float, Field(gt=0)]] | None = Field(
        default=None,
        description="Tolerance per interpreter, measured against the one that wrote `output` "
        "(bench/parity.py); a backend without an entry gets `atol`.",
    )

    def atol_for(self, backend: str) -> float:
        """The tolerance the golden smoke test applies on this backend."""
        by_backend: dict[str, float] = dict(self.atol_by_backend or {})
        return by_backend.get(backend, self.atol)


class DatasetInfo(StrictModel):
    name: str
    fingerprint: Sha256


class Provenance(StrictModel):
    """A model trained by `edge-train train` (bundles without `kind` are trained ones)."""

    kind: Literal["trained"] = "trained"
    libraries: dict[str, str]
    dataset: DatasetInfo
    seed: int
    config: str = Field(description="The training configuration file, verbatim.")


class SourceFile(StrictModel):
    file: str = Field(description="File name, without its folder.")
    sha256: Sha256


class CalibrationFile(SourceFile):
    windows: int = Field(ge=1, description="Windows of normal data the threshold was set on.")


class ImportedProvenance(StrictModel):
    """A model trained elsewhere and brought in by `edge-train import`: no dataset, seed or
    training config is claimed, only the files the bundle was made from."""

    kind: Literal["imported"]
    libraries: dict[str, str] = Field(description="Versions that read and verified the model.")
    source: SourceFile = Field(description="The imported .tflite file.")
    golden_from: SourceFile = Field(description="Recording whose first window is the golden input.")
    calibration: CalibrationFile | None = Field(
        default=None, description="Normal recording the anomaly threshold was calibrated on."
    )


def _provenance_kind(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("kind", "trained")
    return getattr(value, "kind", "trained")


AnyProvenance = Annotated[
    Union[Annotated[Provenance, Tag("trained")], Annotated[ImportedProvenance, Tag("imported")]],  # noqa: UP007
    Discriminator(
        _provenance_kind,
        custom_error_type="provenance_kind",
        custom_error_message="provenance kind must be 'trained' or 'imported'",
    ),
]


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
    metrics: Metrics | None = Field(
        default=None, description="Required for trained bundles; imported ones may have none."
    )
    model_sha256: Sha256
    not_after: AwareDatetime | None = Field(
        default=None, description="A device checking signatures refuses the bundle after this."
    )
    golden: Golden
    provenance: AnyProvenance

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

    @model_validator(mode="after")
    def _trained_has_metrics(self) -> Manifest:
        if self.metrics is None and self.provenance.kind == "trained":
            raise ValueError("metrics are required for a trained model")
        return self


def json_schema() -> dict:
    return Manifest.model_json_schema(by_alias=True)


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
