"""`edge-train import`: a foreign full-int8 model becomes a bundle the device runs, without
TensorFlow, with nothing invented; bad models and options are refused in one line.

The foreign models are built here with Keras and converted to int8 like any third-party
pipeline would; the expected scores come from a bare interpreter fed by numpy code written in
this file, not from the project's front end or tensor codec.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, read_jsonl, run_cli

RATE, WINDOW, HOP = 100.0, 16, 8
CHANNELS = ["a", "b"]


def _recording(path: Path, rows: int, seed: int) -> np.ndarray:
    """Two noisy tones at 100 Hz as a CSV (ts, a, b); returns the (rows, 2) samples written."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows) / RATE
    a = np.round(np.sin(2 * np.pi * 5 * t) + rng.normal(scale=0.1, size=rows), 5)
    b = np.round(0.5 * np.cos(2 * np.pi * 3 * t) + rng.normal(scale=0.1, size=rows), 5)
    lines = [f"{1_700_000_000 + t[i]:.3f},{a[i]:.5f},{b[i]:.5f}" for i in range(rows)]
    path.write_text("ts,a,b\n" + "\n".join(lines) + "\n")
    return np.column_stack([a, b])


def _windows(samples: np.ndarray) -> np.ndarray:
    starts = range(0, len(samples) - WINDOW + 1, HOP)
    return np.stack([samples[s : s + WINDOW] for s in starts])


def _int8(model, representative: np.ndarray) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Recordings, a steps file and third-party models: an int8 dense autoencoder and
    classifier, the autoencoder as float and as dynamic-range (int8 weights, float I/O)."""
    import keras
    import tensorflow as tf

    root = tmp_path_factory.mktemp("foreign")
    train = _recording(root / "train.csv", 4000, seed=1)
    _recording(root / "normal.csv", 600, seed=2)
    _recording(root / "data.csv", 400, seed=3)
    mean, std = train.mean(axis=0), train.std(axis=0)
    steps = [{"op": "standardize", "mean": mean.tolist(), "std": std.tolist()}, {"op": "flatten"}]
    (root / "steps.json").write_text(json.dumps(steps))
    x = np.stack([((w - mean) / std).reshape(-1) for w in _windows(train)]).astype(np.float32)

    keras.utils.set_random_seed(0)
    inputs = keras.Input((WINDOW * len(CHANNELS),))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    autoencoder = keras.Model(inputs, keras.layers.Dense(WINDOW * len(CHANNELS))(hidden))
    autoencoder.compile("adam", "mse")
    autoencoder.fit(x, x, epochs=20, verbose=0)
    (root / "ae.tflite").write_bytes(_int8(autoencoder, x[:200]))
    (root / "ae_float.tflite").write_bytes(
        tf.lite.TFLiteConverter.from_keras_model(autoencoder).convert()
    )
    dynamic = tf.lite.TFLiteConverter.from_keras_model(autoencoder)
    dynamic.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: float I/O
    (root / "ae_dynamic.tflite").write_bytes(dynamic.convert())

    classifier = keras.Sequential([inputs, keras.layers.Dense(3, activation="softmax")])
    classifier.compile("adam", "sparse_categorical_crossentropy")
    classifier.fit(x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0), epochs=2, verbose=0)
    (root / "clf.tflite").write_bytes(_int8(classifier, x[:200]))
    return {"root": root, "mean": mean, "std": std}


def edge_train(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real `edge-train` process to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "training.cli", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _import_anomaly(root: Path, out: Path, *extra: str | Path) -> subprocess.CompletedProcess:
    return edge_train(
        "import", root / "ae.tflite", "--task", "anomaly", "--channels", "a,b",
        "--window", WINDOW, "--hop", HOP, "--sample-rate", RATE,
        "--features", root / "steps.json", "--golden-from", root / "data.csv",
        "--out", out, *extra,
    )  # fmt: skip


def _one_error_line(result: subprocess.CompletedProcess, prog: str) -> str:
    """The single stderr line of a refused command (exit 2, no traceback), without its prefix."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), result.stderr
    return lines[0].removeprefix(f"{prog}: error: ")


class Bare:
    """The model on a bare LiteRT interpreter, fed by numpy written here: standardize and
    flatten per window, quantize with the tensor's scale and zero point, dequantize."""

    def __init__(self, model: Path, mean: np.ndarray, std: np.ndarray) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model))
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.mean, self.std = mean, std

    def features(self, window: np.ndarray) -> np.ndarray:
        samples = window.astype(np.float32).astype(np.float64)  # the documented dtype rule
        return ((samples - self.mean) / self.std).reshape(-1).astype(np.float32)

    def run(self, features: np.ndarray) -> np.ndarray:
        scale, zero = self.input["quantization"]
        q = np.clip(np.round(features / np.float32(scale)) + zero, -128, 127).astype(np.int8)
        self.interpreter.set_tensor(self.input["index"], q.reshape(self.input["shape"]))
        self.interpreter.invoke()
        scale, zero = self.output["quantization"]
        raw = self.interpreter.get_tensor(self.output["index"])[0]
        return (raw.astype(np.float32) - zero) * np.float32(scale)

    def scores(self, samples: np.ndarray) -> np.ndarray:
        scores = []
        for window in _windows(samples):
            x = self.features(window)
            diff = x.astype(np.float64) - self.run(x).astype(np.float64)
            scores.append(float(np.mean(diff * diff)))
        return np.array(scores)


def _samples(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1)[:, 1:]


@pytest.fixture(scope="module")
def imported(foreign: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The autoencoder imported with a threshold calibrated on normal.csv."""
    out = tmp_path_factory.mktemp("bundles") / "third-party-ae"
    normal = foreign["root"] / "normal.csv"
    result = _import_anomaly(foreign["root"], out, "--calibrate", normal, "--name", out.name)
    assert result.returncode == 0, result.stderr
    return out


def test_import_writes_a_complete_bundle_from_model_and_real_input(
    foreign: dict, imported: Path
) -> None:
    """Test that the manifest's tensors, hashes, golden test and calibrated threshold equal what
    a bare interpreter and numpy give, provenance says imported, and nothing is invented."""
    root = foreign["root"]
    manifest = json.loads((imported / "manifest.json").read_text())
    bare = Bare(root / "ae.tflite", foreign["mean"], foreign["std"])
    model_hash = hashlib.sha256((root / "ae.tflite").read_bytes()).hexdigest()

    assert manifest["name"] == "third-party-ae" and manifest["version"] == "1.0.0"
    assert (imported / "model.tflite").read_bytes() == (root / "ae.tflite").read_bytes()
    assert manifest["model_sha256"] == model_hash
    for which, detail in (("input", bare.input), ("output", bare.output)):
        tensor = manifest["tensors"][which]
        assert tensor["shape"] == detail["shape"].tolist() == [1, 32]
        assert tensor["dtype"] == "int8"
        assert (tensor["scale"], tensor["zero_point"]) == pytest.approx(detail["quantization"])
    assert manifest["input"] == {
        "channels": CHANNELS,
        "sample_rate_hz": RATE,
        "window": WINDOW,
        "hop": HOP,
        "max_gap": None,  # no training data: the device's default gap rule
        "features": json.loads((root / "steps.json").read_text()),
        "baseline": None,
        "reference": None,
    }

    first = bare.features(_samples(root / "data.csv")[:WINDOW])
    np.testing.assert_array_equal(np.float32(manifest["golden"]["input"]), first)
    np.testing.assert_array_equal(np.float32(manifest["golden"]["output"]), bare.run(first))

    normal_scores = bare.scores(_samples(root / "normal.csv"))
    assert len(normal_scores) == (600 - WINDOW) // HOP + 1 == 74
    assert manifest["output"] == {
        "score": "reconstruction_mse",
        "threshold": pytest.approx(np.quantile(normal_scores, 0.99), rel=1e-9),
        "threshold_quantile": 0.99,
        "threshold_source": "quantile",
        "threshold_margin": 1.0,
        "calibrated_on": None,
        "calibration_windows": None,
        "smoothing": None,
    }
    assert manifest["metrics"] is None
    provenance = manifest["provenance"]
    assert provenance["kind"] == "imported"
    assert set(provenance) == {"kind", "libraries", "source", "golden_from", "calibration"}
    assert provenance["source"] == {"file": "ae.tflite", "sha256": model_hash}
    assert provenance["golden_from"] == {
        "file": "data.csv",
        "sha256": hashlib.sha256((root / "data.csv").read_bytes()).hexdigest(),
    }
    assert provenance["calibration"] == {
        "file": "normal.csv",
        "sha256": hashlib.sha256((root / "normal.csv").read_bytes()).hexdigest(),
        "windows": 74,
    }
    assert "tensorflow" not in provenance["libraries"]

    checked = run_cli("check-model", str(imported))
    assert checked.returncode == 0, checked.stderr
    assert "metrics  none (imported without held-out figures)" in checked.stdout
    assert f"imported from ae.tflite (sha256 {model_hash[:16]}...)" in checked.stdout


def test_infer_scores_equal_a_bare_interpreter_run(
    foreign: dict, imported: Path, tmp_path: Path
) -> None:
    """Test that `edge-agent infer` on the imported bundle gives, window for window, the scores
    a bare interpreter gives on windows, features and quantisation computed in this test."""
    root = foreign["root"]
    out = tmp_path / "results.jsonl"
    result = run_cli(
        "infer", str(imported), "--input", str(root / "data.csv"), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    results = [line for line in read_jsonl(out) if line["type"] == "result"]
    expected = Bare(root / "ae.tflite", foreign["mean"], foreign["std"]).scores(
        _samples(root / "data.csv")
    )
    assert len(results) == len(expected) == (400 - WINDOW) // HOP + 1
    np.testing.assert_allclose([r["score"] for r in results], expected, rtol=1e-9, atol=0)
    assert expected.max() > expected.min() > 0  # real, varying scores, not a constant


def test_import_runs_without_tensorflow(foreign: dict, tmp_path: Path) -> None:
    """Test that an import completes in a process where TensorFlow and Keras cannot be imported."""
    root = foreign["root"]
    probe = f"""
import json, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{{name}} is blocked in this test")
sys.meta_path.insert(0, Refuse())
from training.cli import main
code = main(["import", {str(root / "ae.tflite")!r}, "--task", "anomaly", "--channels", "a,b",
             "--window", "16", "--hop", "8", "--sample-rate", "100",
             "--features", {str(root / "steps.json")!r}, "--threshold", "0.5",
             "--golden-from", {str(root / "data.csv")!r}, "--out", {str(tmp_path / "b")!r}])
print(json.dumps({{"code": code, "tf": [m for m in sys.modules if m.startswith("tensorflow")]}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"code": 0, "tf": []}
    assert run_cli("check-model", str(tmp_path / "b")).returncode == 0


def test_given_threshold_is_recorded_as_given(foreign: dict, tmp_path: Path) -> None:
    """Test that --threshold is written as given, with no quantile and no calibration file."""
    result = _import_anomaly(foreign["root"], tmp_path / "ae", "--threshold", "0.25")
    assert result.returncode == 0, result.stderr
    assert "threshold 0.25 (given)" in result.stdout
    manifest = json.loads((tmp_path / "ae" / "manifest.json").read_text())
    assert manifest["output"] == {
        "score": "reconstruction_mse",
        "threshold": 0.25,
        "threshold_quantile": None,
        "threshold_source": "given",
        "threshold_margin": 1.0,
        "calibrated_on": None,
        "calibration_windows": None,
        "smoothing": None,
    }
    assert manifest["provenance"]["calibration"] is None


def _import_classifier(root: Path, out: Path, labels: str) -> subprocess.CompletedProcess:
    return edge_train(
        "import", root / "clf.tflite", "--task", "classification", "--labels", labels,
        "--channels", "a,b", "--window", WINDOW, "--hop", HOP, "--sample-rate", RATE,
        "--features", root / "steps.json", "--golden-from", root / "data.csv", "--out", out,
    )  # fmt: skip


def test_classifier_imports_with_one_label_per_output(foreign: dict, tmp_path: Path) -> None:
    """Test that a classifier imports with three labels for its three outputs and verifies."""
    result = _import_classifier(foreign["root"], tmp_path / "clf", "idle,run,fault")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "clf" / "manifest.json").read_text())
    assert manifest["output"] == {"labels": ["idle", "run", "fault"]}
    assert manifest["tensors"]["output"]["shape"] == [1, 3]
    assert run_cli("check-model", str(tmp_path / "clf")).returncode == 0


def test_labels_count_mismatch_refused(foreign: dict, tmp_path: Path) -> None:
    """Test that two labels for a three-output classifier are refused in one line."""
    result = _import_classifier(foreign["root"], tmp_path / "clf", "idle,fault")
    message = _one_error_line(result, "edge-train")
    assert message == (
        f"--labels gives 2 labels but the output tensor of {foreign['root'] / 'clf.tflite'} "
        "has shape [1, 3] (3 values)"
    )
    assert not (tmp_path / "clf").exists()


@pytest.mark.parametrize("model", ["ae_float.tflite", "ae_dynamic.tflite"])
def test_model_without_int8_input_and_output_refused(
    foreign: dict, tmp_path: Path, model: str
) -> None:
    """Test that a float model and a dynamic-range one (int8 weights, float tensors at its
    edges) are refused in one line naming the tensor types."""
    root = foreign["root"]
    result = edge_train(
        "import", root / model, "--task", "anomaly", "--channels", "a,b", "--window", WINDOW,
        "--hop", HOP, "--features", root / "steps.json", "--threshold", "0.5",
        "--golden-from", root / "data.csv", "--out", tmp_path / "b",
    )  # fmt: skip
    message = _one_error_line(result, "edge-train")
    assert message.startswith(
        f"{root / model}: not a full-int8 model (input tensor float32, output float32); "
    )
    assert not (tmp_path / "b").exists()


def test_calibration_needs_twenty_windows(foreign: dict, tmp_path: Path) -> None:
    """Test that a normal recording with 19 windows is refused with the count and the minimum,
    and one with exactly 20 is accepted and counted."""
    root = foreign["root"]
    rows = (root / "normal.csv").read_text().splitlines()
    short, enough = tmp_path / "short.csv", tmp_path / "enough.csv"
    short.write_text("\n".join(rows[: 1 + WINDOW + 18 * HOP]) + "\n")  # 19 windows
    enough.write_text("\n".join(rows[: 1 + WINDOW + 19 * HOP]) + "\n")  # 20 windows
    message = _one_error_line(
        _import_anomaly(root, tmp_path / "b", "--calibrate", short), "edge-train"
    )
    assert message == (
        f"{short}: 19 complete windows of 16 samples (hop 8); calibrating a threshold needs "
        "at least 20"
    )
    accepted = _import_anomaly(root, tmp_path / "b", "--calibrate", enough)
    assert accepted.returncode == 0, accepted.stderr
    assert f"at quantile 0.99 of 20 windows of {enough}" in accepted.stdout


def test_feature_shape_mismatch_refused_at_import(foreign: dict, tmp_path: Path) -> None:
    """Test that a window whose features do not fit the model input is refused before any
    data is read, naming both shapes."""
    root = foreign["root"]
    result = edge_train(
        "import", root / "ae.tflite", "--task", "anomaly", "--channels", "a,b", "--window", 15,
        "--hop", HOP, "--features", root / "steps.json", "--threshold", "0.5",
        "--golden-from", tmp_path / "not-read.csv", "--out", tmp_path / "b",
    )  # fmt: skip
    assert _one_error_line(result, "edge-train") == (
        f"{root / 'ae.tflite'}: the feature pipeline turns a (15, 2) window into shape (30,) "
        "but the model's input tensor has shape [1, 32]; check --window, --channels, --features"
    )


def test_wrong_feature_shape_refused_at_load_by_every_entry_point(
    foreign: dict, imported: Path, tmp_path: Path
) -> None:
    """Test that a bundle whose window no longer gives the model's input shape (golden test
    intact) is refused with the same one line by check-model, infer and the agent: exit 2,
    no traceback, no result."""
    bundle = tmp_path / "broken"
    shutil.copytree(imported, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["input"]["window"] = 15
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    expected = (
        f"{bundle}: the feature pipeline turns a (15, 2) window into shape (30,) but the "
        "model's input tensor has shape [1, 32]"
    )
    assert _one_error_line(run_cli("check-model", str(bundle)), "edge-agent") == expected

    out = tmp_path / "results.jsonl"
    data = foreign["root"] / "data.csv"
    infer = run_cli("infer", str(bundle), "--input", str(data), "--output", str(out))
    assert _one_error_line(infer, "edge-agent") == expected
    assert read_jsonl(out) == []

    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "dev"\n[[sources]]\nkind = "replay"\nid = "rec"\npath = "{data}"\n'
        f'[[models]]\nbundle = "{bundle}"\nsource = "rec"\n'
        f'[[sinks]]\nkind = "jsonl"\npath = "{out}"\n'
    )
    agent = run_cli("run", "-c", str(config))
    assert agent.returncode == 2, agent.stderr
    assert agent.stderr.strip().splitlines()[-1] == f"edge-agent: error: {expected}"
    assert "Traceback" not in agent.stderr
    assert read_jsonl(out) == []


def test_anomaly_model_must_reconstruct_its_input(foreign: dict, tmp_path: Path) -> None:
    """Test that a model whose output is not the size of its input is refused as an anomaly
    model (its score compares the two), in one line naming both tensors."""
    root = foreign["root"]
    result = edge_train(
        "import", root / "clf.tflite", "--task", "anomaly", "--channels", "a,b", "--window",
        WINDOW, "--hop", HOP, "--features", root / "steps.json", "--threshold", "0.5",
        "--golden-from", root / "data.csv", "--out", tmp_path / "b",
    )  # fmt: skip
    assert _one_error_line(result, "edge-train") == (
        f"{root / 'clf.tflite'}: an anomaly model must reconstruct its input (score = mean "
        "squared error), but its output tensor [1, 3] has 3 values and its input [1, 32] 32"
    )
