"""Anomaly models beyond the dense autoencoder: sequence autoencoders, score kinds, threshold
policies, smoothing and the per-stream baseline, trained for real and replayed by the agent."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli import main as agent_main
from edge_agent.config.models import AlarmConfig
from edge_agent.manifest import AnomalyOutput
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime import load_model
from edge_agent.stream.blocks import SampleBlock
from training.anomaly import with_baseline
from training.cli import main as train_main
from training.config import load_config
from training.datasets import build_task_data
from training.evaluation import anomaly_scores, window_scores
from training.trainer import _features

RATE = 100.0
T0 = 1_700_000_000.0


def write_machine(path: Path, level: float, seed: int, fault: bool, gap_at: int = 0) -> Path:
    """Two channels at `level` (machines differ in level) with a 5 Hz tone; 40 s normal, then,
    if `fault`, 20 s where the tone moves to 13 Hz and doubles. `gap_at`: a 30 s hole there."""
    rng = np.random.default_rng(seed)
    n_normal, n_fault = 4000, 2000 if fault else 0
    i = np.arange(n_normal + n_fault)
    t = i / RATE
    tone = np.where(i < n_normal, np.sin(2 * np.pi * 5 * t), 2 * np.sin(2 * np.pi * 13 * t))
    a = level + tone + rng.normal(scale=0.2, size=i.size)
    b = 0.5 * level + 0.5 * tone + rng.normal(scale=0.2, size=i.size)
    stamps = T0 + t + np.where((gap_at > 0) & (i >= gap_at), 30.0, 0.0)
    label = np.where(i < n_normal, "normal", "fault")
    rows = [f"{s:.2f},{x:.4f},{y:.4f},{lab}" for s, x, y, lab in zip(stamps, a, b, label)]
    path.write_text("ts,a,b,label\n" + "\n".join(rows) + "\n")
    return path


CONV_TOML = """
name = "tiny-conv-ae"
task = "anomaly"
seed = 1
[dataset]
kind = "table"
train = ["m1.csv", "m2.csv"]
test = "m3.csv"
channels = ["a", "b"]
label_column = "label"
[input]
window = 32
hop = 8
normalise = "none"
[input.baseline]
samples = 300
[model]
architecture = "conv1d_autoencoder"
filters = [8, 4]
kernel_size = 3
epochs = 8
batch_size = 32
learning_rate = 0.01
[output]
score = "reconstruction_mae"
threshold_quantile = 0.95
threshold_margin = 1.2
calibrate_on = "train+validation"
smoothing = { method = "ewma", alpha = 0.5 }
"""

LSTM_TOML = """
name = "tiny-lstm-ae"
task = "anomaly"
seed = 2
[dataset]
kind = "table"
train = ["m1.csv", "m2.csv"]
test = "m3.csv"
channels = ["a", "b"]
label_column = "label"
[input]
window = 16
hop = 8
normalise = "none"
[input.baseline]
samples = 200
[model]
architecture = "lstm_autoencoder"
dense_units = [8]
epochs = 8
batch_size = 32
learning_rate = 0.01
[output]
score = "reconstruction_max_error"
threshold_quantile = 0.99
smoothing = { method = "moving_mean", windows = 3 }
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("anomaly")
    write_machine(folder / "m1.csv", level=10.0, seed=1, fault=True)
    write_machine(folder / "m2.csv", level=50.0, seed=2, fault=True)
    write_machine(folder / "m3.csv", level=30.0, seed=3, fault=True)
    write_machine(folder / "stream.csv", level=80.0, seed=4, fault=False, gap_at=2500)
    (folder / "conv.toml").write_text(CONV_TOML)
    (folder / "lstm.toml").write_text(LSTM_TOML)
    return folder


@pytest.fixture(scope="module")
def trained(project: Path) -> dict[str, tuple[Path, str]]:
    """Both sequence autoencoders trained, converted and verified once: (bundle, stderr)."""
    import contextlib
    import io

    out = {}
    for name in ("conv", "lstm"):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = train_main(
                [
                    "train",
                    str(project / f"{name}.toml"),
                    "--models",
                    str(project / "models"),
                    "--reports",
                    str(project / "reports"),
                ]
            )
        assert code == 0, stderr.getvalue()[-2000:]
        out[name] = (project / "models" / f"tiny-{name}-ae", stderr.getvalue())
    return out


@pytest.mark.parametrize("name", ["conv", "lstm"])
def test_sequence_autoencoders_are_full_int8_and_detect_the_fault(
    trained: dict[str, tuple[Path, str]], name: str
) -> None:
    """Test that each architecture trains, converts with int8 input and output, passes the
    float-vs-int8 gate, and that its int8 model separates faults on the unseen machine."""
    from ai_edge_litert.interpreter import Interpreter

    runner = load_model(trained[name][0])
    assert runner.input_spec.dtype == "int8" and runner.output_spec.dtype == "int8"
    tensors = Interpreter(model_path=str(trained[name][0] / "model.tflite")).get_tensor_details()
    # every activation and weight int8; int32 only for biases and shape bookkeeping
    assert {t["dtype"].__name__ for t in tensors} == {"int8", "int32"}
    assert runner.input_spec.shape[1:] == [32 if name == "conv" else 16, 2]
    metrics = runner.manifest.metrics.values
    assert metrics["roc_auc"].int8_model > 0.9, metrics
    assert abs(metrics["roc_auc"].float_model - metrics["roc_auc"].int8_model) <= 0.02


def test_manifest_records_the_threshold_policy(trained: dict[str, tuple[Path, str]]) -> None:
    """Test score kind, quantile x margin, calibration set and window count, smoothing and
    baseline as data in the manifest; the count is the train plus validation windows."""
    manifest = load_model(trained["conv"][0]).manifest
    output = manifest.output
    assert isinstance(output, AnomalyOutput)
    assert output.score == "reconstruction_mae" and output.threshold_margin == 1.2
    assert output.calibrated_on == "train+validation" and output.smoothing.alpha == 0.5
    assert manifest.input.baseline.samples == 300
    log = trained["conv"][1]
    train_val = re.search(r"\[threshold\] int8: \S+ = quantile 0.95 x 1.2 of (\d+)", log)
    assert train_val and int(train_val.group(1)) == output.calibration_windows
    config, _ = load_config(trained["conv"][0].parent.parent / "conv.toml")
    data = build_task_data(config)
    baselined = with_baseline(data, config.input.baseline, lambda _: None)
    assert output.calibration_windows == len(baselined.train.windows) + len(baselined.val.windows)
    summary = (
        trained["conv"][0].parent.parent / "reports" / "tiny-conv-ae" / "summary.md"
    ).read_text()
    assert (
        f"(reconstruction_mae): quantile 0.95 x 1.2 of {output.calibration_windows} "
        "train+validation windows; scores smoothed (ewma 0.5)."
    ) in summary


def test_too_few_calibration_windows_are_reported(trained: dict[str, tuple[Path, str]]) -> None:
    """Test that quantile 0.99 on a few hundred validation windows is said in the log (one line
    for the run) and in the report, not silently accepted."""
    bundle, log = trained["lstm"]
    windows = load_model(bundle).manifest.output.calibration_windows
    warnings = [line for line in log.splitlines() if line.startswith("[threshold] warning")]
    assert len(warnings) == 1  # said once, though the float and the int8 model are calibrated
    assert f"only {windows} calibration windows for quantile 0.99: about 1000" in warnings[0]
    summary = (bundle.parent.parent / "reports" / "tiny-lstm-ae" / "summary.md").read_text()
    assert f"**Warning**: only {windows} calibration windows" in summary
    assert "warning" not in trained["conv"][1]  # 0.95 of ~700 windows is enough


def _training_scores(project: Path, name: str, bundle: Path) -> tuple[list, list]:
    """Smoothed and raw scores of stream.csv computed the training way (datasets, baseline,
    features, evaluation), with the bundle's int8 model."""
    config, _ = load_config(project / f"{name}.toml")
    dataset = config.dataset.model_copy(update={"test": [project / "stream.csv"]})
    config = config.model_copy(update={"dataset": dataset})
    data = with_baseline(build_task_data(config), config.input.baseline, lambda _: None)
    runner = load_model(bundle)
    spec = runner.manifest.input
    inputs = _features(spec.features, data.test.windows, spec.sample_rate_hz).astype(np.float32)
    outputs = runner.predict_many(inputs)
    output = runner.manifest.output
    smoothed = window_scores(output, inputs, outputs, data.test.runs)
    return smoothed.tolist(), anomaly_scores(inputs, outputs, output.score).tolist()


@pytest.mark.parametrize("name", ["conv", "lstm"])
def test_agent_replay_scores_equal_training_scores_bit_for_bit(
    project: Path, trained: dict[str, tuple[Path, str]], tmp_path: Path, name: str
) -> None:
    """Test that `edge-agent infer` on a recording with a gap publishes exactly the training
    path's smoothed `score` and unsmoothed `raw_score` for every window (baseline fitted per
    stream, smoothing restarted at the gap as at the segment)."""
    bundle = trained[name][0]
    out = tmp_path / "results.jsonl"
    code = agent_main(
        ["infer", str(bundle), "--input", str(project / "stream.csv"), "--output", str(out)]
    )
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    results = [line for line in lines if line.get("type") == "result"]
    smoothed, raw = _training_scores(project, name, bundle)
    assert len(results) == len(smoothed) > 100
    assert [r["score"] for r in results] == smoothed
    assert [r["raw_score"] for r in results] == raw
    assert smoothed != raw  # the smoothing really acts


class _Collect:
    def __init__(self) -> None:
        self.results: list = []

    def emit(self, event) -> None:
        if getattr(event, "output", None) is not None:
            self.results.append(event)

    def flush(self) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


def test_baseline_does_not_depend_on_how_samples_are_blocked(
    project: Path, trained: dict[str, tuple[Path, str]]
) -> None:
    """Test that the agent's baseline completes at the same sample whatever the block size:
    1, 7 or 1000 rows per block give the same windows unscored and the same scores."""
    runner = load_model(trained["conv"][0])
    rows = np.loadtxt(project / "m3.csv", delimiter=",", skiprows=1, usecols=(1, 2))[:1000]
    seen = []
    for size in (1, 7, 1000):
        sink = _Collect()
        pipeline = ModelPipeline("d", "m", runner, AlarmConfig(enabled=False), [sink])
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            pipeline.push(SampleBlock("s", ("a", "b"), chunk, T0 + start / RATE, rate_hz=RATE))
        scores = [r.output["raw_score"] for r in sink.results]
        seen.append((pipeline.baseline.unscored, scores, [r.window_end for r in sink.results]))
    assert seen[0][:2] == seen[1][:2] == seen[2][:2]
    # Windows end at rows 31, 39, ...; rows 0-299 are the baseline: ends 31..295 are not
    # scored, the first result is the window ending at row 303.
    assert seen[0][0] == (295 - 31) // 8 + 1
    for _, _, ends in seen:
        assert ends[0] == pytest.approx(T0 + 303 / RATE)


def test_windows_before_the_baseline_are_not_scored_and_that_is_said(
    project: Path, trained: dict[str, tuple[Path, str]], capsys: pytest.CaptureFixture
) -> None:
    """Test that until the stream's first 300 samples arrived the pipeline names the incomplete
    baseline as the reason for no output, and `edge-agent check-model` shows the baseline."""
    runner = load_model(trained["conv"][0])
    pipeline = ModelPipeline("d", "m", runner, AlarmConfig(enabled=False), [_Collect()])
    rows = np.loadtxt(project / "m3.csv", delimiter=",", skiprows=1, usecols=(1, 2))[:250]
    assert pipeline.push(SampleBlock("s", ("a", "b"), rows, T0, rate_hz=RATE)) == 0
    assert pipeline.no_output_reason() == (
        "baseline incomplete: 250 of 300 samples collected; 28 windows before it were not scored"
    )
    assert agent_main(["check-model", str(trained["conv"][0])]) == 0
    assert "baseline per stream, fitted on its first 300 samples" in capsys.readouterr().out


def test_sequence_autoencoders_refuse_inputs_they_cannot_take() -> None:
    """Test one-line errors for a flat feature vector and for a time axis the pooling cannot
    halve evenly, before any layer is built."""
    from edge_agent.errors import ConfigError
    from training.config import ModelConfig
    from training.models import conv1d_autoencoder, lstm_autoencoder

    config = ModelConfig(architecture="conv1d_autoencoder", filters=[8, 4])
    with pytest.raises(ConfigError, match="drop the flatten"):
        conv1d_autoencoder((64,), config)
    with pytest.raises(ConfigError, match="multiple of 4 time steps; the model input has 30"):
        conv1d_autoencoder((30, 2), config)
    with pytest.raises(ConfigError, match="needs \\(time, channels\\) model inputs"):
        lstm_autoencoder((64,), ModelConfig(architecture="lstm_autoencoder"))


def test_evaluate_applies_the_per_stream_baseline_as_training_did(
    project: Path, trained: dict[str, tuple[Path, str]], capsys: pytest.CaptureFixture
) -> None:
    """Test that `edge-train evaluate` on the held-out machine standardises it by its own
    baseline: it scores only the windows ending after the first 300 samples, and its figures
    are exactly the int8 figures training recorded on that file."""
    bundle = trained["conv"][0]
    args = ["evaluate", str(bundle), "--data", str(project / "m3.csv"), "--label-column", "label"]
    assert train_main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # 6000 rows, windows of 32 every 8 end at rows 31 ... 5999; those up to 295 are not scored
    assert report["examples"] == (5999 - 31) // 8 + 1 - ((295 - 31) // 8 + 1)
    recorded = load_model(bundle).manifest.metrics.values
    assert {"roc_auc", "false_alarm_rate", "point_f1"} <= set(recorded)
    assert {key: pair.int8_model for key, pair in recorded.items()} == {
        key: report["metrics"][key] for key in recorded
    }
    assert report["metrics"]["roc_auc"] > 0.9  # without the baseline: about 0.001
