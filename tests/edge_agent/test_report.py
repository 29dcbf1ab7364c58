"""`edge-agent report`: a run's JSON lines become a PNG or HTML with alarm periods shaded."""

from __future__ import annotations

from pathlib import Path

import orjson

from edge_agent.report import alarm_spans
from tests.conftest import REPO_ROOT, run_cli
from tests.edge_agent.test_agent_e2e import _recording


def test_alarm_spans_pair_raises_with_clears() -> None:
    """Test that raised/cleared lines become spans, repeats of a raise extend none, and an
    alarm still raised at the end runs to the end."""
    lines = [
        {"state": "raised", "since": 10.0},
        {"state": "raised", "since": 10.0},  # escalated or acknowledged: same period
        {"state": "cleared", "since": 15.0},
        {"state": "raised", "since": 20.0},
    ]
    assert alarm_spans(lines, 30.0) == [(10.0, 15.0), (20.0, 30.0)]


def test_report_from_infer_output_as_png_and_html(tmp_path: Path) -> None:
    """Test a report of `infer` output (healthy then a bearing fault): a real PNG, and HTML
    whose table names the model, its window count and the alarm period."""
    results = tmp_path / "run.jsonl"
    infer = run_cli(
        "infer",
        str(REPO_ROOT / "models/vibration-anomaly"),
        "--input",
        str(_recording(tmp_path / "rec.npz")),
        "--output",
        str(results),
    )
    assert infer.returncode == 0, infer.stderr
    windows = sum(orjson.loads(x)["type"] == "result" for x in results.read_bytes().splitlines())
    png = run_cli("report", str(results), "-o", str(tmp_path / "r.png"))
    assert png.returncode == 0, png.stderr
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = run_cli("report", str(results), "-o", str(tmp_path / "r.html"))
    assert page.returncode == 0, page.stderr
    text = (tmp_path / "r.html").read_text()
    assert "vibration-anomaly" in text and f"<td>{windows}</td>" in text
    assert "data:image/png;base64," in text and "<td>none</td>" not in text


def test_a_file_without_results_is_one_line(tmp_path: Path) -> None:
    """Test that an empty or foreign file gives one error line naming it (exit 2)."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"type": "status"}\n')
    result = run_cli("report", str(empty), "-o", str(tmp_path / "r.html"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no result lines" in result.stderr
