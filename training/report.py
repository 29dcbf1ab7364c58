"""Per-run report folder: PNG plots, metrics.json and a short markdown summary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from training.datasets import TaskData

if TYPE_CHECKING:
    from training.trainer import TrainOutcome


def _save(fig: plt.Figure, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curves(outcome: TrainOutcome, folder) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, values in outcome.history.items():
        if key.endswith("loss"):
            ax.plot(range(1, len(values) + 1), values, label=key)
    ax.set(xlabel="epoch", ylabel="loss", title="Training curves", yscale="log")
    ax.legend()
    _save(fig, folder / "training_curves.png")
    return "training_curves.png"


def _confusion(outcome: TrainOutcome, data: TaskData, folder) -> str:
    matrix = np.array(outcome.int8_eval.tables["confusion_matrix"])
    labels = data.labels or []
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            color="white" if count > matrix.max() / 2 else "black",
        )
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (int8, test)")
    _save(fig, folder / "confusion_matrix.png")
    return "confusion_matrix.png"


def _scores(outcome: TrainOutcome, data: TaskData, folder) -> str:
    scores = outcome.int8_eval.predictions
    faulty = data.test.evaluated().targets.astype(bool)
    output = outcome.manifest.output
    threshold = output.threshold  # type: ignore[union-attr]
    bins = np.geomspace(max(scores.min(), 1e-6), scores.max(), 60)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(scores[~faulty], bins=bins, alpha=0.6, label="normal")
    ax.hist(scores[faulty], bins=bins, alpha=0.6, label="faults")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set(
        xscale="log",
        xlabel=output.score.replace("_", " ")  # type: ignore[union-attr]
        + (" (smoothed)" if output.smoothing else ""),  # type: ignore[union-attr]
        ylabel="windows",
        title="Anomaly scores (int8, test)",
    )
    ax.legend()
    _save(fig, folder / "score_histogram.png")
    return "score_histogram.png"


def _rul(outcome: TrainOutcome, data: TaskData, folder) -> str:
    true = data.test.evaluated().targets
    order = np.argsort(true)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(true[order], "k.-", label="true RUL")
    ax.plot(outcome.float_eval.predictions[order], "b.", alpha=0.6, label="float")
    ax.plot(outcome.int8_eval.predictions[order], "r.", label="int8")
    ax.set(
        xlabel="test engine (sorted by true RUL)",
        ylabel="RUL (cycles)",
        title="Predicted vs true RUL, last window per test engine",
    )
    ax.legend()
    _save(fig, folder / "rul_per_engine.png")
    return "rul_per_engine.png"


def _threshold_line(manifest) -> list[str]:
    """How an anomaly threshold was set, in one sentence (nothing for other tasks)."""
    output = manifest.output
    if manifest.task != "anomaly":
        return []
    if output.threshold_source == "given":
        how = "given in the config"
    else:
        margin = f" x {output.threshold_margin:g}" if output.threshold_margin != 1 else ""
        how = (
            f"quantile {output.threshold_quantile:g}{margin} of {output.calibration_windows} "
            f"{output.calibrated_on} windows"
        )
    smoothing = output.smoothing
    smoothed = (
        ""
        if smoothing is None
        else f"; scores smoothed ({smoothing.method} "
        f"{smoothing.alpha if smoothing.method == 'ewma' else smoothing.windows})"
    )
    return [f"Anomaly threshold {output.threshold:.6g} ({output.score}): {how}{smoothed}."]


def write_report(outcome: TrainOutcome, data: TaskData) -> None:
    folder = outcome.report_dir
    folder.mkdir(parents=True, exist_ok=True)
    manifest = outcome.manifest
    plots = [_curves(outcome, folder)]
    plots.append(
        {"classification": _confusion, "anomaly": _scores, "rul": _rul}[manifest.task](
            outcome, data, folder
        )
    )
    metrics = {
        "float": outcome.float_eval.values,
        "int8": outcome.int8_eval.values,
        "tables": {"float": outcome.float_eval.tables, "int8": outcome.int8_eval.tables},
        "sizes_bytes": outcome.sizes,
        "seconds": outcome.seconds,
        "warnings": outcome.notes,
        "gate_failures": outcome.gate,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    rows = "\n".join(
        f"| {key} | {outcome.float_eval.values[key]:.4f} | {value:.4f} |"
        for key, value in outcome.int8_eval.values.items()
    )
    # one training loss series per fitted network (several for independently trained members)
    epochs = [len(v) for k, v in outcome.history.items() if k.endswith("loss") and "val_" not in k]
    ratio = outcome.sizes["int8_tflite"] / outcome.sizes["float_tflite"]
    lines = [
        f"# {manifest.name} {manifest.version} ({manifest.task})",
        "",
        f"Test data: {manifest.metrics.evaluated_on}.",
        *[f"Data: {note}." for note in data.notes],
        *_threshold_line(manifest),
        *[f"**Warning**: {note}." for note in outcome.notes],
        "",
        *(
            ["**Bundle not written**: the int8 model falls behind float beyond `[gate]`:", ""]
            + [f"- {failure}" for failure in outcome.gate]
            + [""]
            if outcome.gate
            else []
        ),
        "| metric | float | int8 |",
        "|---|---|---|",
        rows,
        "",
        f"Model size: int8 {outcome.sizes['int8_tflite']:,} B, "
        f"float {outcome.sizes['float_tflite']:,} B "
        f"({ratio:.0%}). Input {manifest.tensors.input.shape} {manifest.tensors.input.dtype}, "
        f"output {manifest.tensors.output.shape} {manifest.tensors.output.dtype}.",
        f"Trained in {outcome.seconds:.0f} s; {' + '.join(map(str, epochs)) or 0} epochs.",
        "",
        *[f"![{name}]({name})" for name in plots],
        "",
    ]
    (folder / "summary.md").write_text("\n".join(lines))
