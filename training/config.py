"""Experiment configuration: one TOML file per model, validated strictly (unknown keys fail)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from edge_agent.config.base import read_toml_model
from edge_agent.config.sources import RecordingFormat
from edge_agent.frontend.baseline import BaselineSpec
from edge_agent.frontend.steps import Step
from edge_agent.manifest import Identifier, ScoreName, SemVer, Smoothing
from edge_agent.schema import StrictModel
from edge_agent.sim.vibration import FAULTS

SpeedRange = tuple[float, float]


class SyntheticVibrationData(StrictModel):
    """Generated with edge_agent.sim.vibration; test records use unseen seeds and shaft speeds."""

    kind: Literal["synthetic_vibration"]
    sample_rate_hz: float = Field(default=25600.0, gt=0)
    faults: list[str] = Field(default=list(FAULTS), min_length=2)
    records_per_class: int = Field(default=200, ge=2)
    test_records_per_class: int = Field(default=100, ge=1)
    windows_per_record: int = Field(default=2, ge=1)
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    train_speeds_hz: list[SpeedRange] = [(15.0, 20.0), (25.0, 30.0), (35.0, 40.0), (45.0, 50.0)]
    test_speeds_hz: list[SpeedRange] = [(20.0, 25.0), (30.0, 35.0), (40.0, 45.0)]


class CmapssData(StrictModel):
    kind: Literal["cmapss"]
    directory: Path
    subset: Literal["FD001", "FD002", "FD003", "FD004"] = "FD001"
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)


class TableData(RecordingFormat):
    """Bring your own data: CSV or NPZ files of timestamped multichannel samples. How they are
    read and timed (delimiter, time column, time zone, max_gap) is shared with the replay
    source."""

    kind: Literal["table"]
    train: list[Path] = Field(
        min_length=1, description="A file or a list of files and glob patterns, one recording each."
    )
    test: list[Path] | None = Field(
        default=None, description="Held-out file(s) or patterns; else split from train."
    )
    channels: list[str] = Field(min_length=1)
    label_column: str | None = None
    label_windows: Path | None = Field(
        default=None,
        description="Anomalous intervals instead of a label column: NAB's windows.json (keyed by "
        "file name) or a CSV with start,end columns.",
    )
    normal_label: str = "normal"
    probation: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="NAB protocol: this leading fraction of each file trains and calibrates "
        "(train + validation) and is never scored; test = the rest of each file.",
    )
    unit_column: str | None = None
    rul_column: str | None = None
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)

    @field_validator("train", "test", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _labels_once(self) -> TableData:
        if self.label_windows is not None and self.label_column is not None:
            raise ValueError("give label_column or label_windows, not both")
        if self.label_windows is not None and self.time_source() is None:
            raise ValueError("label_windows needs times from a time_column (time = 'column')")
        return self


DatasetConfig = Annotated[
    Union[SyntheticVibrationData, CmapssData, TableData], Field(discriminator="kind")  # noqa: UP007
]


class InputConfig(StrictModel):
    window: int = Field(ge=1)
    hop: int = Field(ge=1)
    normalise: Literal["channels", "features", "none"] = Field(
        description="Append a standardize step fitted on training data: per input channel "
        "(before the features) or per feature element (after them)."
    )
    features: list[Step] = []
    baseline: BaselineSpec | None = Field(
        default=None,
        description="Per-stream standardisation on the first `samples` samples of each "
        "recording file (table datasets), also applied by the agent to each stream.",
    )


class ModelConfig(StrictModel):
    architecture: Literal[
        "cnn1d_classifier",
        "dense_autoencoder",
        "conv1d_autoencoder",
        "lstm_autoencoder",
        "cnn1d_regressor",
    ]
    filters: list[int] = [32, 64, 64]
    kernel_size: int = Field(default=5, ge=1)
    dense_units: list[int] = [64]
    activation: Literal["relu", "tanh"] = "relu"
    dropout: float = Field(default=0.0, ge=0, lt=1)
    input_noise: float = Field(
        default=0.0, ge=0, description="Std of Gaussian noise added to inputs while training only."
    )
    ensemble: int = Field(default=1, ge=1, le=8, description="Averaged sub-networks in one graph.")
    ensemble_training: Literal["joint", "independent"] = Field(
        default="joint",
        description="'joint' fits the averaged output; 'independent' fits each sub-network on "
        "its own (own optimizer, schedule and early stopping), then averages them.",
    )
    output_scale: float = Field(
        default=1.0,
        gt=0,
        description="cnn1d_regressor: constant the head's output is multiplied by, so the "
        "network learns targets of order one (set it near the largest target, e.g. the RUL cap).",
    )
    epochs: int = Field(default=50, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="constant",
        description="'cosine' decays the learning rate per epoch from learning_rate to 1% of it "
        "at the last epoch (half a cosine period over `epochs`).",
    )
    patience: int = Field(default=10, ge=1, description="Early stopping on validation loss.")

    @model_validator(mode="after")
    def _regressor_options(self) -> ModelConfig:
        """Ensembles and the output scale exist only in cnn1d_regressor: refuse, don't ignore."""
        defaults = {"ensemble": 1, "ensemble_training": "joint", "output_scale": 1.0}
        if self.architecture != "cnn1d_regressor":
            for name, default in defaults.items():
                if getattr(self, name) != default:
                    raise ValueError(f"{name} applies to cnn1d_regressor only")
        return self


class QuantizationConfig(StrictModel):
    representative_examples: int = Field(default=500, ge=10)


class OutputConfig(StrictModel):
    rul_cap: float = Field(default=125.0, gt=0)
    rul_units: Literal["cycles", "hours", "days"] = "cycles"
    score: ScoreName = "reconstruction_mse"
    threshold_quantile: float = Field(default=0.995, gt=0, lt=1)
    threshold_margin: float = Field(
        default=1.0, gt=0, description="The threshold is the quantile times this factor."
    )
    threshold: float | None = Field(
        default=None, gt=0, description="A fixed threshold instead of a calibrated one."
    )
    calibrate_on: Literal["validation", "train+validation"] = Field(
        default="validation",
        description="Normal windows whose scores the quantile is taken of.",
    )
    smoothing: Smoothing | None = None

    @model_validator(mode="after")
    def _fixed_or_quantile(self) -> OutputConfig:
        calibrated = {"threshold_quantile", "threshold_margin", "calibrate_on"}
        if self.threshold is not None and self.model_fields_set & calibrated:
            raise ValueError(
                "output.threshold fixes the threshold; drop "
                + ", ".join(sorted(self.model_fields_set & calibrated))
            )
        return self


class GateConfig(StrictModel):
    """How far the int8 model may fall behind the float one before training refuses to write
    the bundle. Defaults leave room for the committed reference bundles' measured gaps."""

    max_auc_drop: float = Field(default=0.02, ge=0, description="ROC AUC, float minus int8.")
    max_accuracy_drop: float = Field(default=0.02, ge=0, description="Accuracy and macro F1.")
    max_rmse_increase: float = Field(
        default=0.05, ge=0, description="RMSE, int8 over float minus 1 (relative)."
    )
    max_false_alarm_increase: float = Field(
        default=0.02, ge=0, description="False-alarm rate, int8 minus float."
    )


class TrainConfig(StrictModel):
    name: Identifier
    version: SemVer = "1.0.0"
    task: Literal["classification", "anomaly", "rul"]
    description: str = ""
    seed: int = 0
    dataset: DatasetConfig
    input: InputConfig
    model: ModelConfig
    quantization: QuantizationConfig = QuantizationConfig()
    output: OutputConfig = OutputConfig()
    gate: GateConfig = GateConfig()

    @model_validator(mode="after")
    def _task_fits(self) -> TrainConfig:
        wanted = {
            "classification": ("cnn1d_classifier",),
            "anomaly": ("dense_autoencoder", "conv1d_autoencoder", "lstm_autoencoder"),
            "rul": ("cnn1d_regressor",),
        }[self.task]
        if self.model.architecture not in wanted:
            choices = " or ".join(f"'{name}'" for name in wanted)
            raise ValueError(f"task '{self.task}' needs model.architecture = {choices}")
        anomaly_only = {"score", "threshold", "threshold_margin", "calibrate_on", "smoothing"}
        misplaced = sorted(anomaly_only & self.output.model_fields_set)
        if self.task != "anomaly" and misplaced:
            raise ValueError(f"output.{', output.'.join(misplaced)} only apply to task 'anomaly'")
        if self.input.baseline is not None:
            if self.dataset.kind != "table" or self.task == "rul":
                raise ValueError(
                    "input.baseline needs a table dataset (each file is a stream) and task "
                    "classification or anomaly"
                )
            if self.input.normalise == "channels":
                raise ValueError(
                    "input.baseline already standardises each channel per stream; "
                    "use input.normalise = 'features' or 'none'"
                )
        if self.dataset.kind == "cmapss" and self.task != "rul":
            raise ValueError("the cmapss dataset only supports task = 'rul'")
        if self.dataset.kind == "table" and self.task != "anomaly":
            for key in ("label_windows", "probation"):
                if getattr(self.dataset, key) is not None:
                    raise ValueError(f"dataset.{key} is for task = 'anomaly'")
        if self.dataset.kind == "synthetic_vibration" and self.task == "rul":
            raise ValueError("the synthetic_vibration dataset supports classification or anomaly")
        return self


def load_config(path: str | Path) -> tuple[TrainConfig, str]:
    """Parse and validate a config file; relative dataset paths are resolved against its folder."""
    config, text = read_toml_model(Path(path), TrainConfig)
    return _resolve_paths(config, Path(path).parent), text


def _resolve_paths(config: TrainConfig, base: Path) -> TrainConfig:
    data = config.dataset

    def resolve(value: Path) -> Path:
        return value if value.is_absolute() else base / value

    updates: dict[str, Path | list[Path]] = {}
    for field in ("directory", "train", "test", "label_windows"):
        value = getattr(data, field, None)
        if isinstance(value, Path):
            updates[field] = resolve(value)
        elif isinstance(value, list):  # files and glob patterns, resolved the same way
            updates[field] = [resolve(item) for item in value]
    if not updates:
        return config
    return config.model_copy(update={"dataset": data.model_copy(update=updates)})
