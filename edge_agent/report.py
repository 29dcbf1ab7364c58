"""`edge-agent report`: a run's JSON lines as a picture a person would rather look at than read.

One panel per model over measurement time: the anomaly score against its threshold, the label
timeline of a classifier (with its confidence), or the remaining-life trajectory; alarm periods
shaded. HTML (the figure embedded, plus a table) or PNG. Needs the `report` extra (matplotlib).
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on a device or in CI
import matplotlib.pyplot as plt
import orjson

from edge_agent.errors import DataError

Lines = list[dict[str, Any]]


def read_run(path: Path) -> tuple[dict[str, Lines], dict[str, Lines]]:
    """Results and alarm lines per model id, in file order."""
    if not path.is_file():
        raise DataError(path, "file not found")
    results: dict[str, Lines] = defaultdict(list)
    alarms: dict[str, Lines] = defaultdict(list)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise DataError(path, f"not JSON: {exc}", line=number) from None
            kind = line.get("type") if isinstance(line, dict) else None
            if kind == "result":
                results[line["model"]["id"]].append(line)
            elif kind == "alarm":
                alarms[line["model"]["id"]].append(line)
    if not results:
        raise DataError(path, "no result lines (expected edge-agent JSON-lines output)")
    return dict(results), dict(alarms)


def alarm_spans(alarms: Lines, end: float) -> list[tuple[float, float]]:
    """(start, end) measurement times the alarm was raised; one still raised ends at `end`."""
    spans, since = [], None
    for line in alarms:
        if line["state"] == "raised" and since is None:
            since = line["since"]
        elif line["state"] == "cleared" and since is not None:
            spans.append((since, line["since"]))
            since = None
    if since is not None:
        spans.append((since, end))
    return spans


def _panel(axes, model: str, results: Lines, alarms: Lines, t0: float) -> dict[str, str]:
    times = [r["window"]["end"] - t0 for r in results]
    task = results[0]["task"]
    summary = {"model": model, "task": task, "windows": str(len(results))}
    if task == "anomaly":
        axes.plot(times, [r["score"] for r in results], lw=1, label="score")
        axes.axhline(results[-1]["threshold"], color="k", ls="--", lw=1, label="threshold")
        axes.set_yscale("log")
        axes.set_ylabel("anomaly score")
        summary["anomalous"] = f"{sum(r['is_anomaly'] for r in results)} windows"
    elif task == "classification":
        labels = sorted({r["label"] for r in results} | set(results[0]["probabilities"]))
        axes.scatter(times, [labels.index(r["label"]) for r in results], s=6, label="label")
        axes.set_yticks(range(len(labels)), labels)
        confidence = axes.twinx()
        confidence.plot(times, [r["confidence"] for r in results], color="grey", lw=0.6)
        confidence.set_ylim(0, 1.05)
        confidence.set_ylabel("confidence", color="grey")
        summary["last label"] = results[-1]["label"]
    else:
        axes.plot(times, [r["rul"] for r in results], lw=1, label="remaining life")
        axes.set_ylabel(f"RUL ({results[0]['units']})")
        summary["last RUL"] = f"{results[-1]['rul']:.1f} {results[0]['units']}"
    spans = alarm_spans(alarms, results[-1]["window"]["end"])
    for start, end in spans:
        axes.axvspan(start - t0, end - t0, color="tab:red", alpha=0.15)
    summary["alarms"] = ", ".join(f"{s - t0:.1f}-{e - t0:.1f} s" for s, e in spans) or "none"
    axes.set_title(f"{model} ({task}); shaded: alarm raised", fontsize=10)
    axes.grid(alpha=0.3)
    return summary


def render(results: dict[str, Lines], alarms: dict[str, Lines]) -> tuple[bytes, list[dict]]:
    """The figure as PNG bytes, and one summary row per model."""
    t0 = min(lines[0]["window"]["start"] for lines in results.values())
    figure, axes = plt.subplots(
        len(results), 1, figsize=(10, 2.8 * len(results)), sharex=True, squeeze=False
    )
    rows = [
        _panel(axes[i, 0], model, lines, alarms.get(model, []), t0)
        for i, (model, lines) in enumerate(sorted(results.items()))
    ]
    axes[-1, 0].set_xlabel("measurement time since the first window (s)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue(), rows


def write_report(source: Path, target: Path) -> Path:
    """Write `target` (.html or .png) from the JSON lines in `source`."""
    if target.suffix.lower() not in (".html", ".png"):
        raise DataError(target, "the report is written as .html or .png")
    png, rows = render(*read_run(source))
    image = base64.b64encode(png).decode()
    if target.suffix.lower() == ".png":
        target.write_bytes(png)
        return target
    keys = list(dict.fromkeys(k for row in rows for k in row))
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(row.get(k, ''))}</td>" for k in keys) + "</tr>"
        for row in rows
    )
    target.write_text(
        "<!doctype html><meta charset='utf-8'><title>edge-agent run report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .8em;"
        "border-bottom:1px solid #ddd;text-align:left}</style>"
        f"<h1>Run report</h1><p>{html.escape(str(source))}</p>"
        "<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>"
        f"{table}</table>"
        f"<img alt='results over time' src='data:image/png;base64,{image}'>"
    )
    return target
