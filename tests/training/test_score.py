"""`edge-train score`: the evaluate report from an agent's JSON-lines results, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from training.cli import main


@pytest.fixture(scope="module")
def replayed(tiny_bundles: dict[str, Path], tmp_path_factory) -> dict[str, Path]:
    """The tiny anomaly bundle's labelled test file replayed by `edge-agent infer`."""
    bundle = tiny_bundles["anomaly"]
    data = bundle.parent.parent / "anomaly" / "test.csv"
    results = tmp_path_factory.mktemp("score") / "results.jsonl"
    done = run_cli("infer", str(bundle), "--input", str(data), "--output", str(results))
    assert done.returncode == 0, done.stderr
    return {"bundle": bundle, "data": data, "results": results}


def _json(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_score_equals_evaluate_with_a_label_column(replayed: dict[str, Path], capsys) -> None:
    """Test that scoring infer's results against the label column gives evaluate's report,
    windows across the file's label changes included."""
    flags = ["--data", str(replayed["data"]), "--label-column", "label"]
    evaluated = _json(capsys, "evaluate", str(replayed["bundle"]), *flags)
    scored = _json(capsys, "score", str(replayed["results"]), *flags)
    assert scored["metrics"] == evaluated["metrics"]
    assert scored["examples"] == evaluated["examples"] == (8000 - 128) // 64 + 1
    assert evaluated["metrics"]["events"] == 2  # the two 'worn' stretches


def test_score_prints_counts_and_rates(replayed: dict[str, Path], capsys) -> None:
    """Test the readable report: a title line, counts as integers, rates with four decimals."""
    args = ["score", str(replayed["results"]), "--data", str(replayed["data"])]
    assert main([*args, "--label-column", "label"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "tiny-anomaly 1.0.0: 124 results"
    shown = dict(line.split() for line in lines[1:])
    assert shown["events"] == "2" and shown["windows"] == "124"
    assert len(shown["point_f1"].split(".")[1]) == 4


def _lines(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: [e, {**e, "model": {**e["model"], "id": "other"}}], "pick one with --model"),
        (lambda e: [{**e, "task": "rul"}], "score needs anomaly results"),
        (lambda e: [{**e, "window": {"start": 1.0, "end": 2.0}}], "no result's window end"),
        (lambda e: [{**e, "type": "alarm"}], "no results"),
    ],
)
def test_unscorable_results_are_one_line(
    replayed: dict[str, Path], tmp_path: Path, capsys, change, message: str
) -> None:
    """Test that results of several models, of another task, from another recording, or none
    at all are refused in one line (exit 2)."""
    events = [json.loads(line) for line in replayed["results"].read_text().splitlines()]
    first = next(e for e in events if e["type"] == "result")
    bad = _lines(tmp_path / "bad.jsonl", change(first))
    args = ["score", str(bad), "--data", str(replayed["data"]), "--label-column", "label"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
