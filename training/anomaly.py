"""Training-side glue for anomaly models: the per-stream baseline applied to dataset splits and
the threshold calibrated as the manifest records it. The computations themselves (baseline,
scores, smoothing) are edge_agent's, so training and the agent cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from edge_agent.errors import DataError
from edge_agent.frontend.baseline import BaselineSpec, apply_baseline, fit_baseline
from edge_agent.manifest import AnomalyOutput
from training.config import OutputConfig
from training.datasets import Split, TaskData
from training.evaluation import calibrate_threshold, quantile_support, window_scores

Log = Callable[[str], None]


def with_baseline(data: TaskData, spec: BaselineSpec | None, log: Log) -> TaskData:
    """Each split's windows standardised by their own stream's baseline (`baseline_split`)."""
    if spec is None:
        return data
    splits = {
        name: baseline_split(getattr(data, name), data.streams, spec, f"{data.name} {name}", log)
        for name in ("train", "val", "test")
    }
    return replace(data, **splits)


def baseline_split(
    split: Split, streams: list[np.ndarray], spec: BaselineSpec | None, what: str, log: Log
) -> Split:
    """Each window standardised by its own stream's baseline (edge_agent.frontend.baseline),
    fitted on the first rows of `streams[i]`; windows ending within them are dropped, as the
    agent does not score them. Training and `edge-train evaluate` both call this; `what`
    names the split in the log and in the error when no evaluated window is left."""
    if spec is None:
        return split
    assert split.streams is not None and split.rows is not None
    fitted = {
        stream: fit_baseline(spec, streams[stream])
        for stream in np.unique(split.streams).tolist()
        if len(streams[stream]) >= spec.samples
    }
    keep = split.rows >= spec.samples
    log(
        f"[baseline] {what}: {int((~keep).sum())} of {len(keep)} windows end within the "
        f"first {spec.samples} samples of their file and are not scored"
    )
    kept = split.select(keep)
    windows = [
        apply_baseline(fitted[int(stream)], window)
        for stream, window in zip(kept.streams, kept.windows)  # type: ignore[arg-type]
    ]
    if not (kept.scored.any() if kept.scored is not None else windows):
        raise DataError(
            what,
            f"no evaluated window ends after the baseline's first {spec.samples} samples of "
            "its file: lower input.baseline.samples or give longer recordings",
        )
    return replace(kept, windows=np.stack(windows).astype(np.float32))


def anomaly_output(
    config: OutputConfig, threshold: float = 1.0, windows: int | None = None
) -> AnomalyOutput:
    """The manifest's anomaly output for `config`: a fixed threshold as given, else the
    calibrated `threshold` from `windows` normal scores."""
    if config.threshold is not None:
        return AnomalyOutput(
            score=config.score,
            threshold=config.threshold,
            threshold_source="given",
            smoothing=config.smoothing,
        )
    return AnomalyOutput(
        score=config.score,
        threshold=threshold,
        threshold_quantile=config.threshold_quantile,
        threshold_margin=config.threshold_margin,
        calibrated_on=config.calibrate_on,
        calibration_windows=windows,
        smoothing=config.smoothing,
    )


def calibrate(
    config: OutputConfig,
    data: TaskData,
    x: dict[str, np.ndarray],
    predict: Callable[[np.ndarray], np.ndarray],
    log: Log,
    notes: list[str],
    which: str,
) -> AnomalyOutput:
    """The anomaly output with its threshold: fixed, or the quantile (x margin) of the normal
    calibration windows' scores, smoothed per run of consecutive windows as the agent does.
    `predict` is the float or the int8 model (`which` says which, in the log); a shortfall of
    calibration windows is logged once and added to `notes` for the report."""
    draft = anomaly_output(config)
    if draft.threshold_source == "given":
        return draft
    names = ["val"] if config.calibrate_on == "validation" else ["train", "val"]
    scores = np.concatenate(
        [
            window_scores(draft, x[name], predict(x[name]), getattr(data, name).runs)
            for name in names
        ]
    )
    quantile, margin = config.threshold_quantile, config.threshold_margin
    threshold = max(calibrate_threshold(scores, quantile) * margin, 1e-12)
    log(
        f"[threshold] {which}: {threshold:.6g} = quantile {quantile:g} x {margin:g} of "
        f"{len(scores)} {config.calibrate_on} windows"
    )
    problem = quantile_support(len(scores), quantile)
    if problem is not None and problem not in notes:  # once, though float and int8 both ask
        log(f"[threshold] warning: {problem}")
        notes.append(problem)
    return anomaly_output(config, threshold, len(scores))
