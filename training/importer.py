"""`edge-train import`: a full-int8 TFLite model trained elsewhere -> a complete, verified bundle.

Every manifest field is read from the model (tensors, sha256), given on the command line
(channels, window, hop, sample rate, features, labels, threshold, RUL units), or measured here on
real input (the golden test, a calibrated threshold). Nothing is invented: an imported bundle has
no dataset fingerprint, seed, training config or metrics; its provenance says `imported` and
names the files it was made from with their sha256. TensorFlow is not needed: the model is read
and run by the device's own interpreter backend.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from pydantic import RootModel, ValidationError

import edge_agent
from edge_agent.bundle import MODEL_FILE, TFLITE_IDENTIFIER, Bundle, sha256_hex
from edge_agent.errors import BundleError, ConfigError, DataError
from edge_agent.frontend.steps import Step
from edge_agent.frontend.windowing import sliding_windows
from edge_agent.manifest import (
    SCHEMA_VERSION,
    AnomalyOutput,
    CalibrationFile,
    ClassificationOutput,
    Golden,
    ImportedProvenance,
    InputSpec,
    Manifest,
    RulOutput,
    SourceFile,
    Tensors,
)
from edge_agent.postprocess import reconstruction_mse
from edge_agent.recording import read_columns
from edge_agent.runtime.backends import BackendChoice, resolve_interpreter
from edge_agent.runtime.model import ModelRunner, feature_shape_problem, load_model
from edge_agent.runtime.quantization import tensor_spec
from edge_agent.schema import ID_RE, describe_validation_error, read_validated
from training.evaluation import calibrate_threshold
from training.trainer import write_manifest

TASKS = ("anomaly", "classification", "rul")
MIN_CALIBRATION_WINDOWS = 20
DEFAULT_QUANTILE = 0.99
_DISTRIBUTION = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "tensorflow": "tensorflow",
}


class FeatureSteps(RootModel[list[Step]]):
    """A JSON list of front-end steps, exactly as in a manifest's `input.features`."""


@dataclass(frozen=True)
class ImportRequest:
    """What `edge-train import` was given; the paths as typed."""

    model: Path
    task: str
    channels: list[str]
    window: int
    hop: int
    golden_from: Path
    sample_rate_hz: float | None = None
    features: Path | None = None
    name: str | None = None  # default: the model file's stem
    version: str = "1.0.0"
    description: str = ""
    out: Path | None = None  # default: models/<name>
    labels: list[str] | None = None
    threshold: float | None = None
    calibrate: Path | None = None
    quantile: float | None = None  # default DEFAULT_QUANTILE, with calibrate only
    units: str | None = None
    cap: float | None = None
    backend: BackendChoice = "auto"


@dataclass(frozen=True)
class ImportOutcome:
    bundle_dir: Path
    runner: ModelRunner  # the written bundle as the device loads it
    golden_error: float
    calibration_windows: int | None


def read_steps(path: Path) -> list[Step]:
    """Front-end steps from a JSON file; a bad step names its index and key."""
    steps, _ = read_validated(path, json.loads, FeatureSteps, ConfigError, "feature steps", "JSON")
    return steps.root


def _file(path: Path) -> SourceFile:
    return SourceFile(file=path.name, sha256=sha256_hex(path.read_bytes()))


def _probe(path: Path, backend: BackendChoice) -> tuple[bytes, Tensors, str]:
    """The model's bytes, its tensors as the interpreter reports them, and the backend name;
    anything but one int8 input and one int8 output tensor is refused."""
    try:
        model = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "model file not found") from None
    if model[4:8] != TFLITE_IDENTIFIER:
        raise BundleError(f"{path}: not a TFLite flatbuffer (identifier {model[4:8]!r})")
    name, interpreter_class = resolve_interpreter(backend)
    try:
        interpreter = interpreter_class(model_content=model)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise BundleError(f"{path}: {name} cannot load the model ({exc})") from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise BundleError(
            f"{path}: expected one input and one output tensor, "
            f"found {len(inputs)} and {len(outputs)}"
        )
    tensors = Tensors(input=tensor_spec(inputs[0]), output=tensor_spec(outputs[0]))
    if any(t.dtype != "int8" or t.scale == 0 for t in (tensors.input, tensors.output)):
        raise BundleError(
            f"{path}: not a full-int8 model (input tensor {tensors.input.dtype}, output "
            f"{tensors.output.dtype}); convert it with a representative dataset, "
            "TFLITE_BUILTINS_INT8 and int8 inference_input_type and inference_output_type"
        )
    return model, tensors, name


def _recording_windows(path: Path, channels: list[str], window: int, hop: int) -> np.ndarray:
    """Every complete window of a CSV/NPZ recording, channels picked by name, rows in order."""
    columns = read_columns(path, channels, [])
    samples = np.column_stack([columns[name] for name in channels])
    return sliding_windows(np.ascontiguousarray(samples), window, hop)


def _check_task_options(request: ImportRequest, tensors: Tensors) -> None:
    """The options each task needs, present, consistent with the model and not misapplied."""
    model, task = request.model, request.task
    given = {
        "--labels": request.labels is not None,
        "--threshold": request.threshold is not None,
        "--calibrate": request.calibrate is not None,
        "--quantile": request.quantile is not None,
        "--units": request.units is not None,
        "--cap": request.cap is not None,
    }
    allowed = {
        "classification": {"--labels"},
        "anomaly": {"--threshold", "--calibrate", "--quantile"},
        "rul": {"--units", "--cap"},
    }[task]
    misplaced = [flag for flag, present in given.items() if present and flag not in allowed]
    if misplaced:
        raise ConfigError(f"{', '.join(misplaced)}: not an option for {task} models")
    n_out = int(np.prod(tensors.output.shape))
    if task == "classification":
        if not request.labels:
            raise ConfigError("a classification model needs --labels, one per output value")
        if len(request.labels) != n_out or tensors.output.shape[-1] != n_out:
            raise ConfigError(
                f"--labels gives {len(request.labels)} labels but the output tensor of "
                f"{model} has shape {tensors.output.shape} ({n_out} values)"
            )
    elif task == "anomaly":
        if (request.threshold is None) == (request.calibrate is None):
            raise ConfigError("an anomaly model needs either --threshold X or --calibrate FILE")
        if request.quantile is not None and request.calibrate is None:
            raise ConfigError("--quantile applies with --calibrate only")
        if request.quantile is not None and not 0 < request.quantile < 1:
            raise ConfigError(f"--quantile must be between 0 and 1, got {request.quantile}")
        if request.threshold is not None and not request.threshold > 0:
            raise ConfigError(f"--threshold must be > 0, got {request.threshold}")
        n_in = int(np.prod(tensors.input.shape))
        if n_out != n_in:
            raise ConfigError(
                f"{model}: an anomaly model must reconstruct its input (score = mean squared "
                f"error), but its output tensor {tensors.output.shape} has {n_out} values and "
                f"its input {tensors.input.shape} {n_in}"
            )
    else:
        if request.units is None or request.cap is None:
            raise ConfigError("a rul model needs --units and --cap")
        if n_out != 1:
            raise ConfigError(
                f"{model}: a rul model gives one value, but its output tensor has shape "
                f"{tensors.output.shape}"
            )


def _libraries(backend: str) -> dict[str, str]:
    try:
        backend_version = version(_DISTRIBUTION[backend])
    except PackageNotFoundError:
        backend_version = "unknown"
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "edge_agent": edge_agent.__version__,
        backend: backend_version,
    }


def import_model(request: ImportRequest) -> ImportOutcome:
    """Read the model, check it against the options, run real input through it, write the
    bundle and load it back exactly as the device does."""
    if request.task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {request.task!r}")
    name = request.name or request.model.stem
    if not ID_RE.match(name):
        raise ConfigError(
            f"bundle name {name!r} is not an identifier ([A-Za-z0-9][A-Za-z0-9_.-]*): give --name"
        )
    model, tensors, backend = _probe(request.model, request.backend)
    steps = read_steps(request.features) if request.features is not None else []
    try:
        spec = InputSpec(
            channels=request.channels,
            sample_rate_hz=request.sample_rate_hz,
            window=request.window,
            hop=request.hop,
            features=steps,
        )
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "input options")) from None
    problem = feature_shape_problem(spec, tensors.input)
    if problem is not None:
        raise ConfigError(f"{request.model}: {problem}; check --window, --channels, --features")
    _check_task_options(request, tensors)

    pipeline = spec.pipeline()
    golden_windows = _recording_windows(request.golden_from, spec.channels, spec.window, spec.hop)
    if len(golden_windows) == 0:
        raise DataError(request.golden_from, f"shorter than one window of {spec.window} samples")
    golden_input = pipeline(golden_windows[0])
    quantile = request.quantile if request.quantile is not None else DEFAULT_QUANTILE
    bundle_dir = request.out if request.out is not None else Path("models") / name

    def manifest(output, golden: Golden, calibration: CalibrationFile | None) -> Manifest:
        try:
            return Manifest(
                schema_version=SCHEMA_VERSION,
                name=name,
                version=request.version,
                task=request.task,  # type: ignore[arg-type]
                description=request.description,
                created_at=datetime.now(UTC).replace(microsecond=0),
                input=spec,
                output=output,
                tensors=tensors,
                metrics=None,
                model_sha256=sha256_hex(model),
                golden=golden,
                provenance=ImportedProvenance(
                    kind="imported",
                    libraries=_libraries(backend),
                    source=SourceFile(file=request.model.name, sha256=sha256_hex(model)),
                    golden_from=_file(request.golden_from),
                    calibration=calibration,
                ),
            )
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, "manifest")) from None

    def task_output(threshold: float | None):
        if request.task == "classification":
            return ClassificationOutput(labels=request.labels)  # type: ignore[arg-type]
        if request.task == "rul":
            return RulOutput(units=request.units, cap=request.cap)  # type: ignore[arg-type]
        if request.calibrate is None:
            return AnomalyOutput(
                score="reconstruction_mse", threshold=threshold, threshold_source="given"
            )
        return AnomalyOutput(
            score="reconstruction_mse", threshold=threshold, threshold_quantile=quantile
        )

    try:  # a calibrated threshold is not known yet: any valid number until it is
        first_output = task_output(request.threshold or 1.0)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "output options")) from None
    draft = manifest(
        first_output, Golden(input=golden_input.tolist(), output=[0.0], atol=1.0), None
    )
    runner = ModelRunner(Bundle(path=bundle_dir, manifest=draft, model=model), request.backend)

    threshold, calibration = request.threshold, None
    if request.calibrate is not None:
        windows = _recording_windows(request.calibrate, spec.channels, spec.window, spec.hop)
        if len(windows) < MIN_CALIBRATION_WINDOWS:
            raise DataError(
                request.calibrate,
                f"{len(windows)} complete windows of {spec.window} samples (hop {spec.hop}); "
                f"calibrating a threshold needs at least {MIN_CALIBRATION_WINDOWS}",
            )
        inputs = pipeline.batch(windows)
        scores = np.array([reconstruction_mse(x, runner.predict(x)) for x in inputs])
        threshold = calibrate_threshold(scores, quantile)
        if not threshold > 0:
            raise DataError(
                request.calibrate,
                f"the model reconstructs the windows exactly (quantile {quantile:g} of "
                f"{len(windows)} scores is {threshold:g}); give --threshold",
            )
        calibration = CalibrationFile(**_file(request.calibrate).model_dump(), windows=len(windows))

    golden = Golden(
        input=golden_input.tolist(),
        output=runner.predict(golden_input).tolist(),
        atol=1.01 * max(tensors.output.scale, 1e-6),
    )
    final = manifest(task_output(threshold), golden, calibration)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    (bundle_dir / MODEL_FILE).write_bytes(model)
    write_manifest(bundle_dir, final)
    loaded = load_model(bundle_dir, backend=request.backend)  # as a device reads it
    assert loaded.golden_error is not None
    return ImportOutcome(
        bundle_dir,
        loaded,
        loaded.golden_error,
        None if calibration is None else calibration.windows,
    )
