"""`edge-train train`: data -> front end -> Keras -> int8 TFLite -> verified bundle + report."""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import edge_agent
from edge_agent.bundle import MANIFEST_FILE, MODEL_FILE, Bundle, sha256_hex
from edge_agent.frontend.steps import Standardize, Step, as_samples, compile_steps
from edge_agent.manifest import (
    SCHEMA_VERSION,
    ChannelReference,
    ClassificationOutput,
    DatasetInfo,
    Golden,
    InputSpec,
    Manifest,
    MetricPair,
    Metrics,
    Provenance,
    RulOutput,
    Tensors,
)
from edge_agent.runtime.backends import resolve_interpreter
from edge_agent.runtime.model import ModelRunner, load_model
from edge_agent.runtime.quantization import tensor_spec
from training.anomaly import anomaly_output, calibrate, with_baseline
from training.config import TrainConfig
from training.datasets import TaskData, build_task_data
from training.evaluation import (
    Evaluation,
    GateError,
    evaluate_split,
    gate_failures,
    quantile_support,
)
from training.timeline import TIMELINE_FIGURES

Log = Callable[[str], None]


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class TrainOutcome:
    bundle_dir: Path
    report_dir: Path
    manifest: Manifest
    float_eval: Evaluation
    int8_eval: Evaluation
    history: dict[str, list[float]]
    sizes: dict[str, int]
    seconds: float
    notes: list[str] = field(default_factory=list)  # warnings the report must repeat
    gate: list[str] = field(default_factory=list)  # why the int8 model was refused, if it was


def _features(steps: list[Step], windows: np.ndarray, rate: float | None) -> np.ndarray:
    """Front end per window in float64, exactly as FeaturePipeline runs it before its final cast."""
    run = compile_steps(steps, rate)
    return np.stack([run(as_samples(w)) for w in windows])


def _fit_steps(config: TrainConfig, data: TaskData, log: Log) -> tuple[list[Step], dict]:
    """Front-end steps with fitted normalisation, and float32 model inputs for every split."""
    steps = list(config.input.features)
    if config.input.normalise == "channels":
        rows = data.train_rows.astype(np.float64)
        steps.insert(
            0,
            Standardize(
                mean=rows.mean(axis=0).tolist(), std=np.maximum(rows.std(axis=0), 1e-9).tolist()
            ),
        )
    raw = {}
    for name in ("train", "val", "test"):
        started = time.perf_counter()
        raw[name] = _features(steps, getattr(data, name).windows, data.sample_rate_hz)
        log(
            f"[features] {name}: {len(raw[name])} windows -> {raw[name].shape[1:]} "
            f"in {time.perf_counter() - started:.1f}s"
        )
    if config.input.normalise == "features":
        fitted = Standardize(
            mean=raw["train"].mean(axis=0).tolist(),
            std=np.maximum(raw["train"].std(axis=0), 1e-6).tolist(),
        )
        steps.append(fitted)
        raw = {name: fitted.apply(x, data.sample_rate_hz) for name, x in raw.items()}
    return steps, {name: x.astype(np.float32) for name, x in raw.items()}


def write_manifest(bundle_dir: Path, manifest: Manifest) -> None:
    (bundle_dir / MANIFEST_FILE).write_text(
        json.dumps(manifest.model_dump(mode="json", by_alias=True), indent=1) + "\n"
    )


def channel_reference(data: TaskData) -> dict[str, ChannelReference]:
    """What the device's input health checks compare against: each channel's raw training
    samples (mean, std, range) and the median std within one training window."""
    rows = data.train_rows.astype(np.float64)
    window_std = np.median(data.train.windows.std(axis=1, dtype=np.float64), axis=0)
    return {
        channel: ChannelReference(
            mean=float(rows[:, i].mean()),
            std=float(rows[:, i].std()),
            min=float(rows[:, i].min()),
            max=float(rows[:, i].max()),
            window_std=float(window_std[i]),
        )
        for i, channel in enumerate(data.channels)
    }


def _build_model(config: TrainConfig, input_shape: tuple[int, ...], n_classes: int):
    import keras

    from training import models

    if config.task == "classification":
        model = models.cnn1d_classifier(input_shape, n_classes, config.model)
        loss, watch = "sparse_categorical_crossentropy", ["accuracy"]
    elif config.task == "anomaly":
        model = getattr(models, config.model.architecture)(input_shape, config.model)
        loss, watch = "mse", []
    else:
        model = models.cnn1d_regressor(input_shape, config.model)
        loss, watch = "mse", []
    model.compile(
        optimizer=keras.optimizers.Adam(config.model.learning_rate), loss=loss, metrics=watch
    )
    return model


def cosine_rate(epoch: int, epochs: int, initial: float, floor: float = 0.01) -> float:
    """Half-cosine decay from `initial` at epoch 0 to `floor * initial` at the last epoch."""
    progress = epoch / max(epochs - 1, 1)
    return initial * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _callbacks(config: TrainConfig) -> list:
    """Early stopping on validation loss (best weights kept), plus the learning-rate schedule."""
    import keras

    model = config.model
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=model.patience, restore_best_weights=True
        )
    ]
    if model.lr_schedule == "cosine":
        callbacks.append(
            keras.callbacks.LearningRateScheduler(
                lambda epoch: cosine_rate(epoch, model.epochs, model.learning_rate)
            )
        )
    return callbacks


def _fit(config: TrainConfig, model, x: dict, data: TaskData, log: Log) -> dict[str, list[float]]:
    import keras

    autoencoder = config.task == "anomaly"
    y_train = x["train"] if autoencoder else data.train.targets
    y_val = x["val"] if autoencoder else data.val.targets
    log(f"[fit] {model.count_params()} parameters, up to {config.model.epochs} epochs")
    fits = [(model, "")]
    if config.model.ensemble > 1 and config.model.ensemble_training == "independent":
        from training.models import regressor_members

        fits = [(member, f"{member.name}_") for member in regressor_members(model)]
    history: dict[str, list[float]] = {}
    for network, prefix in fits:
        if network is not model:  # each member gets its own optimizer state and schedule
            network.compile(optimizer=keras.optimizers.Adam(config.model.learning_rate), loss="mse")
            log(f"[fit] {network.name}: independently initialised member of the ensemble")
        fitted = network.fit(
            x["train"],
            y_train,
            validation_data=(x["val"], y_val),
            epochs=config.model.epochs,
            batch_size=config.model.batch_size,
            shuffle=True,
            verbose=2,
            callbacks=_callbacks(config),
        )
        history.update(
            {prefix + key: [float(v) for v in values] for key, values in fitted.history.items()}
        )
    return history


def _library_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "edge_agent": edge_agent.__version__,
    }


def _task_output(config: TrainConfig, data: TaskData):
    if config.task == "classification":
        return ClassificationOutput(labels=data.labels)
    if config.task == "anomaly":
        return anomaly_output(config.output)
    return RulOutput(units=config.output.rul_units, cap=config.output.rul_cap)


def _evaluate_split(config: TrainConfig, data: TaskData, inputs, outputs, anomaly) -> Evaluation:
    """Test figures with the agent's verdicts (training.evaluation.evaluate_split), and for a
    recording the timeline figures `edge-train evaluate` reports beside them."""
    result = evaluate_split(
        config.task, data.test, inputs, outputs, labels=data.labels, anomaly=anomaly
    )
    result.values.update({k: v for k, v in result.report.items() if k in TIMELINE_FIGURES})
    return result


def train(
    config: TrainConfig,
    config_text: str,
    models_dir: Path,
    reports_dir: Path,
    log: Log = log_to_stderr,
) -> TrainOutcome:
    import keras

    from training.quantize import to_float_tflite, to_int8_tflite
    from training.report import write_report

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    log(f"[data] building {config.dataset.kind} for task {config.task}")
    data = build_task_data(config)
    for note in data.notes:
        log(f"[data] {note}")
    log(
        f"[data] train {len(data.train.windows)}, val {len(data.val.windows)}, "
        f"test {len(data.test.windows)} windows of {config.input.window}x{len(data.channels)}"
        + ("" if data.test.scored is None else f" ({int(data.test.scored.sum())} evaluated)")
    )
    reference = channel_reference(data)  # of the raw samples, before any baseline
    data = with_baseline(data, config.input.baseline, log)
    steps, x = _fit_steps(config, data, log)
    model = _build_model(config, x["train"].shape[1:], len(data.labels or []))
    history = _fit(config, model, x, data, log)

    predict = lambda inputs: model.predict(inputs, verbose=0, batch_size=1024)  # noqa: E731
    notes: list[str] = []
    output_float = output_int8 = None  # anomaly outputs with each model's own threshold
    if config.task == "anomaly":
        output_float = calibrate(config.output, data, x, predict, log, notes, "float")
    float_eval = _evaluate_split(config, data, x["test"], predict(x["test"]), output_float)
    log(f"[float] {float_eval.values}")

    log("[quantize] full-int8 post-training quantization")
    rng = np.random.default_rng(config.seed)
    pick = rng.permutation(len(x["train"]))[: config.quantization.representative_examples]
    int8_model = to_int8_tflite(model, x["train"][pick])
    float_model = to_float_tflite(model)

    _, interpreter_class = resolve_interpreter("auto")
    probe = interpreter_class(model_content=int8_model)
    tensors = Tensors(
        input=tensor_spec(probe.get_input_details()[0]),
        output=tensor_spec(probe.get_output_details()[0]),
    )
    draft = Manifest(
        schema_version=SCHEMA_VERSION,
        name=config.name,
        version=config.version,
        task=config.task,
        description=config.description,
        created_at=datetime.now(UTC).replace(microsecond=0),
        input=InputSpec(
            channels=data.channels,
            sample_rate_hz=data.sample_rate_hz,
            window=config.input.window,
            hop=config.input.hop,
            max_gap=getattr(config.dataset, "max_gap", None),
            features=steps,
            reference=reference,
            baseline=config.input.baseline,
        ),
        output=output_float or _task_output(config, data),
        tensors=tensors,
        metrics=Metrics(evaluated_on=data.test_description, values={}),
        model_sha256=sha256_hex(int8_model),
        golden=Golden(input=x["test"][0].tolist(), output=[0.0], atol=1.0),
        provenance=Provenance(
            libraries=_library_versions(),
            dataset=DatasetInfo(name=data.name, fingerprint=data.fingerprint),
            seed=config.seed,
            config=config_text,
        ),
    )
    bundle_dir = models_dir / config.name
    runner = ModelRunner(Bundle(path=bundle_dir, manifest=draft, model=int8_model))
    log(f"[int8] evaluating on {runner.backend}")
    if config.task == "anomaly":
        output_int8 = calibrate(config.output, data, x, runner.predict_many, log, notes, "int8")
    int8_eval = _evaluate_split(
        config, data, x["test"], runner.predict_many(x["test"]), output_int8
    )
    log(f"[int8] {int8_eval.values}")
    thin = (
        output_int8 is not None
        and output_int8.threshold_source != "given"
        and (
            quantile_support(output_int8.calibration_windows or 0, output_int8.threshold_quantile)
            is not None
        )
    )
    if thin and "false_alarm_rate" in int8_eval.values:
        notes.append(
            "the float-vs-int8 gate left out the false-alarm rate: with the threshold on the "
            "few largest calibration scores, each model's rate measures where those fell, not "
            "quantization (ROC AUC is still gated)"
        )
        log(f"[gate] {notes[-1]}")
    refused = gate_failures(config.gate, float_eval.values, int8_eval.values, thin)

    golden_output = runner.predict(x["test"][0])
    manifest = draft.model_copy(
        update={
            "output": output_int8 or _task_output(config, data),
            "metrics": Metrics(
                evaluated_on=data.test_description,
                values={
                    key: MetricPair(float=float_eval.values[key], int8=int8_eval.values[key])
                    for key in int8_eval.values
                },
            ),
            "golden": Golden(
                input=draft.golden.input,
                output=golden_output.tolist(),
                atol=1.01 * max(tensors.output.scale, 1e-6),
            ),
        }
    )
    if not refused:
        bundle_dir.mkdir(parents=True, exist_ok=True)
        (bundle_dir / MODEL_FILE).write_bytes(int8_model)
        write_manifest(bundle_dir, manifest)
        load_model(bundle_dir)  # the bundle as a device reads it: hash, tensors, golden smoke test
        log(f"[bundle] wrote and verified {bundle_dir}")

    sizes = {"int8_tflite": len(int8_model), "float_tflite": len(float_model)}
    outcome = TrainOutcome(
        bundle_dir,
        reports_dir / config.name,
        manifest,
        float_eval,
        int8_eval,
        history,
        sizes,
        time.perf_counter() - started,
        notes,
        refused,
    )
    write_report(outcome, data)
    log(f"[report] {outcome.report_dir} ({outcome.seconds:.0f}s total)")
    if refused:
        raise GateError(
            f"int8 model refused, bundle not written ({outcome.report_dir / 'summary.md'} "
            f"says why): {'; '.join(refused)}"
        )
    return outcome
