"""The edge-train command line: its verbs, and one readable line (exit 2) for each bad input."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_agent.bundle import read_bundle
from tests.conftest import REPO_ROOT, make_project
from training.cli import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_inspect_prints_summary_and_verification(tiny_bundles: dict[str, Path], capsys) -> None:
    """Test that inspect loads, verifies and summarises a bundle."""
    assert main(["inspect", str(tiny_bundles["classification"])]) == 0
    out = capsys.readouterr().out
    assert "tiny-classifier 1.0.0  task=classification" in out
    assert "verified on ai_edge_litert: hash ok, tensors ok" in out


def test_evaluate_json_and_predictions_csv(
    tiny_bundles: dict[str, Path], tmp_path: Path, capsys
) -> None:
    """Test that evaluate's accuracy matches its own per-window rows and the trainer's figure."""
    bundle = tiny_bundles["classification"]
    data = bundle.parent.parent / "classification" / "test.csv"
    out_csv = tmp_path / "pred.csv"
    assert (
        main(
            [
                "evaluate",
                str(bundle),
                "--data",
                str(data),
                "--label-column",
                "label",
                "--json",
                "--predictions",
                str(out_csv),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(out_csv.open()))
    # 8000 samples, window 128, hop 64: windows across the three label changes are kept
    assert report["examples"] == len(rows) == (8000 - 128) // 64 + 1
    labels = read_bundle(bundle).manifest.output.labels
    # Each row carries its window's first and last time (unix seconds, as the file has them);
    # the label is the last sample's.
    label_at = {
        float(t): label
        for t, label in (line.split(",")[::4] for line in data.read_text().splitlines()[1:])
    }
    assert all(labels[int(r["target"])] == label_at[float(r["end"])] for r in rows)
    changes = sum(label_at[float(r["start"])] != label_at[float(r["end"])] for r in rows)
    assert changes == 2 * 3  # two windows (window = 2 hops) across each of three label changes
    assert {r["prediction"] for r in rows} <= set(labels)
    # Accuracy recounted by hand from the rows: target index -> label, compared with prediction.
    right = sum(labels[int(r["target"])] == r["prediction"] for r in rows)
    assert report["metrics"]["accuracy"] == pytest.approx(right / len(rows), abs=1e-12)
    # The same held-out file the trainer scored: the bundle's own int8 figure.
    metrics = read_bundle(bundle).manifest.metrics.values
    assert report["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"].int8_model)
    assert report["metrics"]["accuracy"] >= 0.85  # chance is 0.5 for these two states


def test_evaluate_rul_on_units(tiny_bundles: dict[str, Path], tmp_path: Path, capsys) -> None:
    """Test that RUL evaluation scores each unit's last window: RMSE recomputed by hand."""
    bundle = tiny_bundles["rul"]
    data = bundle.parent.parent / "rul" / "test.csv"
    out_csv = tmp_path / "pred.csv"
    args = ["evaluate", str(bundle), "--data", str(data), "--json", "--predictions", str(out_csv)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(out_csv.open()))
    assert report["examples"] == len(rows) == 6
    # The truth is each unit's RUL on its last row of the file.
    last: dict[str, float] = {}
    for line in data.read_text().splitlines()[1:]:
        unit, *_, rul = line.split(",")
        last[f"unit {unit}"] = float(rul)
    assert {r["tag"]: float(r["target"]) for r in rows} == last
    errors = [float(r["prediction"]) - float(r["target"]) for r in rows]
    by_hand = float(np.sqrt(np.mean(np.square(errors))))
    assert report["metrics"]["rmse"] == pytest.approx(by_hand, rel=1e-5)  # rows keep 6 digits
    metrics = read_bundle(bundle).manifest.metrics.values
    assert report["metrics"]["rmse"] == pytest.approx(metrics["rmse"].int8_model)
    assert report["metrics"]["phm08_score"] == pytest.approx(metrics["phm08_score"].int8_model)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("seed = 3", "seed = 3\nsneed = 4"), "sneed: Extra inputs"),
        (lambda text: text.replace("window = 128", "window = 0"), "input.window"),
        (
            lambda text: text.replace(
                'architecture = "cnn1d_classifier"', 'architecture = "dense_autoencoder"'
            ),
            "needs model.architecture",
        ),
        (lambda text: text + "\n[broken", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line(tmp_path: Path, edit, message: str) -> None:
    """Test that config mistakes exit 2 with the file and key named, and no traceback."""
    config = make_project(tmp_path, "classification")
    config.write_text(edit(config.read_text()))
    result = _run("train", str(config), "--models", str(tmp_path / "m"))
    assert result.returncode == 2
    assert message in result.stderr and str(config) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda lines: [*lines[:2], "1700000000.002,0.1,nan,0.3,normal", *lines[3:]], "not finite"),
        (lambda lines: [*lines[:2], "1700000000.002,0.1,0.3,normal", *lines[3:]], "4 fields"),
        (
            lambda lines: [*lines[:2], "1700000000.002,0.1,abc,0.3,normal", *lines[3:]],
            "'abc' is not a number",
        ),
        (lambda lines: ["ts,ax,ay,label", *lines[1:]], "missing column"),
    ],
)
def test_bad_data_file_names_file_and_line(tmp_path: Path, corrupt, message: str) -> None:
    """Test that malformed CSV rows stop training with file:line: problem and exit 2."""
    config = make_project(tmp_path, "classification")
    train = tmp_path / "train.csv"
    train.write_text("\n".join(corrupt(train.read_text().splitlines())) + "\n")
    result = _run("train", str(config), "--models", str(tmp_path / "m"))
    assert result.returncode == 2, result.stderr
    assert f"{train}:" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_rul_unit_shorter_than_window_is_rejected(tmp_path: Path) -> None:
    """Test that a C-MAPSS training unit shorter than the window is a clear data error."""
    config = tmp_path / "c.toml"
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"1 {c} " + " ".join(["1.5"] * 24) for c in range(1, 11)]
    (data / "train_FD001.txt").write_text("\n".join(rows) + "\n")
    (data / "test_FD001.txt").write_text("\n".join(rows[:5]) + "\n")
    (data / "RUL_FD001.txt").write_text("7\n")
    source = (REPO_ROOT / "training/configs/cmapss_fd001_rul.toml").read_text()
    config.write_text(
        source.replace('directory = "../../../shared/data/cmapss"', 'directory = "data"').replace(
            "validation_fraction = 0.2", "validation_fraction = 0.5"
        )
    )
    rows2 = [f"2 {c} " + " ".join(["1.5"] * 24) for c in range(1, 61)]
    (data / "train_FD001.txt").write_text("\n".join(rows + rows2) + "\n")
    result = _run("train", str(config), "--models", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "unit 1 has 10 cycles, fewer than the 40-cycle window" in result.stderr


def test_inspect_truncated_model_is_refused(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    """Test that a truncated model.tflite is caught by its hash before any parsing."""
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundles["anomaly"], bundle)
    model = bundle / "model.tflite"
    model.write_bytes(model.read_bytes()[:1000])
    result = _run("inspect", str(bundle))
    assert result.returncode == 2
    assert "model.tflite: sha256" in result.stderr and "truncated" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_files_are_named(tmp_path: Path) -> None:
    """Test that a missing config or bundle is one line naming it."""
    result = _run("train", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "nope.toml: config file not found" in result.stderr
    result = _run("inspect", str(tmp_path / "nobundle"))
    assert result.returncode == 2 and "nobundle: bundle directory not found" in result.stderr


def test_reference_adds_what_training_writes(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    """Test that `edge-train reference` gives a bundle without one exactly the per-channel
    reference training wrote, and refuses a config whose data has other channels."""
    trained = tiny_bundles["rul"]
    config = trained.parent.parent / "rul" / "rul.toml"
    bundle = tmp_path / "old-bundle"
    shutil.copytree(trained, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    written_by_training = manifest["input"].pop("reference")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert read_bundle(bundle).manifest.input.reference is None

    assert main(["reference", str(config), str(bundle)]) == 0
    added = json.loads((bundle / "manifest.json").read_text())["input"]["reference"]
    assert added == written_by_training

    other = trained.parent.parent / "classification" / "classification.toml"
    result = _run("reference", str(other), str(bundle))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "channels" in errors[0], result.stderr
