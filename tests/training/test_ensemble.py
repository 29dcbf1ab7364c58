"""RUL regressor options: independently trained ensemble members, cosine schedule, output scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import ConfigError
from edge_agent.runtime import load_model
from tests.conftest import make_project
from training.cli import main
from training.config import load_config
from training.datasets import build_task_data
from training.trainer import _build_model, _fit, _fit_steps, cosine_rate

OPTIONS = """architecture = "cnn1d_regressor"
ensemble = 2
ensemble_training = "independent"
lr_schedule = "cosine"
output_scale = 60.0
"""


def _project(folder: Path) -> Path:
    """The tiny RUL project of conftest with two independent members, cosine rate, scaled head."""
    config = make_project(folder, "rul")
    text = config.read_text().replace('architecture = "cnn1d_regressor"\n', "")
    config.write_text(text.replace("[model]\n", "[model]\n" + OPTIONS))
    return config


@pytest.mark.parametrize(
    "option", ["ensemble = 2", 'ensemble_training = "independent"', "output_scale = 60.0"]
)
def test_regressor_options_refused_for_other_architectures(tmp_path: Path, option: str) -> None:
    """Test a classifier config with a regressor-only option fails loading, naming the option."""
    config = make_project(tmp_path, "classification")
    config.write_text(config.read_text().replace("[model]\n", f"[model]\n{option}\n"))
    name = option.split(" = ")[0]
    with pytest.raises(ConfigError, match=f"{name} applies to cnn1d_regressor only"):
        load_config(config)


def test_cosine_rate_runs_from_initial_to_floor() -> None:
    """Test the half-cosine: full rate at epoch 0, half way at the middle, 1 % at the last epoch."""
    assert cosine_rate(0, 11, 0.01) == pytest.approx(0.01)
    assert cosine_rate(5, 11, 0.01) == pytest.approx(0.01 * (0.01 + 0.99 * 0.5))
    assert cosine_rate(10, 11, 0.01) == pytest.approx(0.0001)
    rates = [cosine_rate(epoch, 11, 0.01) for epoch in range(11)]
    assert rates == sorted(rates, reverse=True)


def test_members_fitted_one_by_one_on_the_cosine_schedule(tmp_path: Path) -> None:
    """Test each member gets its own fit and cosine rates, and the model averages the members."""
    import keras

    from training.models import regressor_members

    config, _ = load_config(_project(tmp_path))
    keras.utils.set_random_seed(config.seed)
    data = build_task_data(config)
    _, x = _fit_steps(config, data, lambda _: None)
    model = _build_model(config, x["train"].shape[1:], 0)
    history = _fit(config, model, x, data, lambda _: None)

    epochs, rate = config.model.epochs, config.model.learning_rate
    for name in ("member_1", "member_2"):
        assert len(history[f"{name}_loss"]) == len(history[f"{name}_val_loss"]) == epochs
        expected = [cosine_rate(epoch, epochs, rate) for epoch in range(epochs)]
        assert history[f"{name}_learning_rate"] == pytest.approx(expected, rel=1e-5)
    assert "loss" not in history  # the average itself is never fitted
    first, second = regressor_members(model)
    assert not np.allclose(first.get_weights()[0], second.get_weights()[0])
    batch = x["val"][:16]
    members = (first(batch, training=False) + second(batch, training=False)) / 2
    np.testing.assert_allclose(model(batch, training=False), members, rtol=1e-5, atol=1e-4)


def test_ensemble_bundle_is_full_int8(tmp_path: Path) -> None:
    """Test the averaged, rescaled members convert to int8 tensors only and report both fits."""
    from ai_edge_litert.interpreter import Interpreter

    config = _project(tmp_path / "project")
    args = ["train", str(config), "--models", str(tmp_path / "m"), "--reports", str(tmp_path / "r")]
    assert main(args) == 0
    bundle = tmp_path / "m" / "tiny-rul"
    runner = load_model(bundle)
    assert runner.smoke_test() < 0.5 * runner.output_spec.scale
    interpreter = Interpreter(model_path=str(bundle / "model.tflite"))
    kinds = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert kinds <= {"int8", "int32"}, kinds
    assert "3 + 3 epochs" in (tmp_path / "r" / "tiny-rul" / "summary.md").read_text()
