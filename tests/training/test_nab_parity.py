"""Train/serve parity on real NAB recordings: the agent's published scores equal `evaluate`'s
bit for bit, and `score` on the agent's results gives `evaluate`'s report.

Each case trains a tiny model on the probationary period (NAB protocol), replays the whole
recording through the real agent process (replay source, JSON-lines sink) and compares. Add an
anomaly architecture (or a post-processing variant) by adding its config tail to ARCHITECTURES.
Scores are the published `score` (smoothed where the manifest smooths), verdicts `is_anomaly`.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.bundle import read_bundle
from tests.conftest import read_jsonl, run_cli
from training.cli import main

RECORDINGS = {
    # file, window, max_gap: the ambient logger's 2 h and 3 h holes are bridged in training only
    # (the replay sets no max_gap: the agent must take it from the manifest); the machine's
    # clock steps back once.
    "ambient": ("ambient_temperature_system_failure.csv", 24, 10800),
    "machine": ("machine_temperature_system_failure.csv", 36, None),
}
TINY = "epochs = 3\nbatch_size = 64\nlearning_rate = 0.01\n"  # a few seconds per model
DENSE = (
    '[[input.features]]\nop = "flatten"\n'
    f'[model]\narchitecture = "dense_autoencoder"\ndense_units = [8, 3]\n{TINY}'
)
SEQUENCE = 'normalise = "channels"\n[model]\n'  # the raw (time, channels) window as model input
# What follows `[input]`'s window and hop: normalisation, baseline, feature steps, [model],
# [output]. The sequence models take windows of 24 and 36 steps (multiples of 4 for conv1d).
ARCHITECTURES = [
    pytest.param(
        f'normalise = "channels"\n{DENSE}[output]\nthreshold_quantile = 0.99\n', id="dense"
    ),
    pytest.param(
        f'{SEQUENCE}architecture = "conv1d_autoencoder"\nfilters = [4, 2]\nkernel_size = 3\n'
        f"{TINY}[output]\nthreshold_quantile = 0.99\n",
        id="conv1d",
    ),
    pytest.param(
        f'{SEQUENCE}architecture = "lstm_autoencoder"\ndense_units = [4]\n{TINY}'
        "[output]\nthreshold_quantile = 0.99\n",
        id="lstm",
    ),
    pytest.param(
        f'normalise = "channels"\n{DENSE}[output]\nthreshold_quantile = 0.99\n'
        'smoothing = { method = "ewma", alpha = 0.3 }\n',
        id="dense-ewma",
    ),
    pytest.param(  # each recording standardised by its own first 200 samples
        f'normalise = "none"\n[input.baseline]\nsamples = 200\n{DENSE}'
        "[output]\nthreshold_quantile = 0.99\n",
        id="dense-baseline",
    ),
]


def _config(folder: Path, nab: Path, recording: str, tail: str) -> Path:
    file, window, max_gap = RECORDINGS[recording]
    gap = f"max_gap = {max_gap}\n" if max_gap else ""
    path = folder / "nab.toml"
    path.write_text(
        f'name = "nab-{recording}"\ntask = "anomaly"\nseed = 1\n'
        f'[dataset]\nkind = "table"\ntrain = "{nab / file}"\nchannels = ["value"]\n'
        f'time_column = "timestamp"\n{gap}label_windows = "{nab / "windows.json"}"\n'
        "probation = 0.15\n"
        f"[input]\nwindow = {window}\nhop = 1\n{tail}"
        # tiny models on 3 epochs: parity is tested here, not how close int8 comes to float
        "[gate]\nmax_auc_drop = 1.0\nmax_false_alarm_increase = 1.0\n"
    )
    return path


def _report(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(
    scope="module",
    params=[(r, a) for r in RECORDINGS for a in ARCHITECTURES],
    ids=lambda param: f"{param[0]}-{param[1].id}",
)
def case(request, tmp_path_factory, nab_dir: Path) -> dict:
    """A model trained on the probation part, evaluated, and replayed through the agent."""
    recording, architecture = request.param
    tail = architecture.values[0]
    folder = tmp_path_factory.mktemp(f"nab-{recording}")
    config = _config(folder, nab_dir, recording, tail)
    assert main(["train", str(config), "--models", str(folder), "--reports", str(folder)]) == 0
    bundle = folder / f"nab-{recording}"
    results = folder / "results.jsonl"
    agent = folder / "agent.toml"
    agent.write_text(
        f'device_id = "parity"\n[[sources]]\nkind = "replay"\nid = "nab"\n'
        f'path = "{nab_dir / RECORDINGS[recording][0]}"\ntime_column = "timestamp"\n'
        f'[[models]]\nbundle = "{bundle}"\nsource = "nab"\n'
        f'[[sinks]]\nkind = "jsonl"\npath = "{results}"\n'
    )
    done = run_cli("run", "-c", str(agent), timeout=600)
    assert done.returncode == 0, done.stderr
    return {
        "config": config,
        "bundle": bundle,
        "results": results,
        "folder": folder,
        "recording": recording,
    }


def test_agent_scores_equal_evaluate_bit_for_bit(case: dict, capsys) -> None:
    """Test that every scored window the agent published has evaluate's start, end, score and
    verdict exactly, and that the agent's other windows all end in the probationary period."""
    predictions = case["folder"] / "predictions.csv"
    args = ["evaluate", str(case["bundle"]), "--data", str(case["config"])]
    _report(capsys, *args, "--predictions", str(predictions))
    rows = list(csv.DictReader(predictions.open()))
    results = sorted(
        (e for e in read_jsonl(case["results"]) if e["type"] == "result"), key=lambda e: e["seq"]
    )
    scored = results[len(results) - len(rows) :]
    assert len(scored) == len(rows) > 1000

    def unix(stamp: str) -> float:
        return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()

    for row, result in zip(rows, scored, strict=True):
        assert (unix(row["start"]), unix(row["end"])) == (
            result["window"]["start"],
            result["window"]["end"],
        )
        assert float(row["score"]) == result["score"]  # bit for bit: both are exact floats
        assert bool(int(row["verdict"])) == result["is_anomaly"]
    if read_bundle(case["bundle"]).manifest.output.smoothing is not None:
        assert any(r["score"] != r["raw_score"] for r in scored)  # the smoothing really acts
    cut = unix(rows[0]["end"])
    probation = results[: len(results) - len(rows)]
    assert probation and all(r["window"]["end"] < cut for r in probation)
    # the gap rule training used travels in the manifest (the replay set none)
    assert read_bundle(case["bundle"]).manifest.input.max_gap == RECORDINGS[case["recording"]][2]


def test_score_on_agent_results_equals_evaluate(case: dict, capsys) -> None:
    """Test that `score` on what the agent published gives exactly `evaluate`'s report, from the
    config and from the recording given with flags."""
    evaluated = _report(capsys, "evaluate", str(case["bundle"]), "--data", str(case["config"]))
    scored = _report(capsys, "score", str(case["results"]), "--data", str(case["config"]))
    assert scored["metrics"] == evaluated["metrics"]
    assert scored["unmatched"] == 0
    metrics = evaluated["metrics"]
    assert metrics["events"] >= 2 and metrics["scored_samples"] > 5000
    assert {"roc_auc", "point_f1", "false_alarms_per_day", "events_detected"} <= set(metrics)
    # training measured the same figures on the same split into the bundle's metrics
    recorded = read_bundle(case["bundle"]).manifest.metrics.values
    assert {"roc_auc", "false_alarm_rate", "point_f1", "false_alarms_per_day"} <= set(recorded)
    assert {key: pair.int8_model for key, pair in recorded.items()} == {
        key: metrics[key] for key in recorded
    }
    toml = case["config"].read_text()
    data = toml.split('train = "')[1].split('"')[0]
    flags = [
        "--data",
        data,
        "--labels",
        toml.split('label_windows = "')[1].split('"')[0],
        "--probation",
        "0.15",
        "--time-column",
        "timestamp",
    ]
    assert _report(capsys, "evaluate", str(case["bundle"]), *flags)["metrics"] == metrics
    assert _report(capsys, "score", str(case["results"]), *flags)["metrics"] == metrics
