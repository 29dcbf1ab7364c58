"""The float-vs-int8 gate on real trainings: one int8 model really degraded by its
quantization, the same model quantized properly passing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edge_agent.runtime import load_model
from training.cli import main as train_main
from training.config import GateConfig
from training.evaluation import gate_failures

CONFIG = """
name = "gated"
task = "anomaly"
seed = 1
[dataset]
kind = "table"
train = "train.csv"
test = "test.csv"
channels = ["v"]
label_column = "label"
[input]
window = 16
hop = 4
normalise = "features"
[[input.features]]
op = "flatten"
[model]
architecture = "dense_autoencoder"
dense_units = [16, 4]
epochs = 20
batch_size = 32
learning_rate = 0.01
[quantization]
representative_examples = {examples}
[output]
threshold_quantile = 0.95
"""


def _write(path: Path, parts: list[tuple[int, float, float, str]], seed: int) -> None:
    """A tone of `amplitude` and `period` (samples) per part, labelled; 100 Hz timestamps."""
    rng = np.random.default_rng(seed)
    rows, k = [], 0
    for n, amplitude, period, label in parts:
        i = np.arange(n)
        v = amplitude * np.sin(2 * np.pi * i / period + rng.uniform(0, 6))
        v += rng.normal(scale=0.05, size=n)
        rows += [f"{(k + j) / 100:.2f},{x:.4f},{label}" for j, x in enumerate(v)]
        k += n
    path.write_text("ts,v,label\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Normal operation is mostly a unit tone with a rarer regime at three times the amplitude
    (11 % of training windows); the fault is a change of frequency."""
    folder = tmp_path_factory.mktemp("gate")
    normal = [(4000, 1.0, 8.3, "normal"), (1000, 3.0, 8.3, "normal"), (4000, 1.0, 8.3, "normal")]
    _write(folder / "train.csv", normal, seed=1)
    test = [(1000, 1.0, 8.3, "normal"), (500, 3.0, 8.3, "normal"), (1500, 1.0, 5.3, "fault")]
    _write(folder / "test.csv", test, seed=2)
    return folder


def _train(project: Path, examples: int, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    config = project / f"gated-{examples}.toml"
    config.write_text(CONFIG.format(examples=examples))
    models, reports = project / f"models-{examples}", project / f"reports-{examples}"
    code = train_main(["train", str(config), "--models", str(models), "--reports", str(reports)])
    return code, capsys.readouterr().err


def test_gate_refuses_an_int8_model_calibrated_on_too_few_examples(
    project: Path, capsys: pytest.CaptureFixture
) -> None:
    """Test that an int8 model whose 10 representative examples miss the high-amplitude regime
    (its activations clip there) is refused: exit 2, one error line naming the metric, both
    figures and the tolerance, no bundle, and a report that says why."""
    code, err = _train(project, 10, capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("edge-train: error:")]
    assert len(errors) == 1 and "int8 model refused, bundle not written" in errors[0]
    found = re.search(
        r"roc_auc float (\S+), int8 (\S+) \(\S+ behind\) exceeds gate.max_auc_drop 0.02", errors[0]
    )
    assert found, errors[0]
    float_auc, int8_auc = float(found.group(1)), float(found.group(2))
    assert float_auc > 0.95 and float_auc - int8_auc > 0.1  # a real, large degradation
    assert not (project / "models-10" / "gated").exists()
    summary = (project / "reports-10" / "gated" / "summary.md").read_text()
    assert "**Bundle not written**" in summary and "gate.max_auc_drop" in summary


def test_gate_passes_the_same_model_quantized_on_enough_examples(
    project: Path, capsys: pytest.CaptureFixture
) -> None:
    """Test that the same data, seed and float model, quantized with 500 representative
    examples, keeps int8 within the default tolerances and gets its bundle written."""
    code, err = _train(project, 500, capsys)
    assert code == 0, err[-1500:]
    metrics = load_model(project / "models-500" / "gated").manifest.metrics.values
    assert metrics["roc_auc"].float_model > 0.95
    assert metrics["roc_auc"].float_model - metrics["roc_auc"].int8_model <= 0.02


def test_gate_leaves_out_false_alarms_only_when_the_threshold_is_thin() -> None:
    """Test that a false-alarm gap fails the gate when the thresholds rest on enough calibration
    windows, is left out when they rest on a few scores, and that ROC AUC counts either way."""
    gate = GateConfig()
    float_values = {"roc_auc": 0.80, "false_alarm_rate": 0.05}
    int8_values = {"roc_auc": 0.79, "false_alarm_rate": 0.10}
    failures = gate_failures(gate, float_values, int8_values)
    assert len(failures) == 1 and "gate.max_false_alarm_increase 0.02" in failures[0]
    assert gate_failures(gate, float_values, int8_values, thin_threshold=True) == []
    int8_values["roc_auc"] = 0.70
    thin = gate_failures(gate, float_values, int8_values, thin_threshold=True)
    assert len(thin) == 1 and thin[0].startswith("roc_auc float 0.8, int8 0.7")
