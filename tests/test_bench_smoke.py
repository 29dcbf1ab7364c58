"""Every script in bench/ still runs: each is started as a real process with tiny sizes (the
numbers are not checked, only that it exits 0 and prints complete tables)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO_ROOT

MESSAGES = 100
# Tiny sizes per script; every script in bench/ must be listed (checked below).
ARGS = {
    "agent_bench.py": [
        "--repeats=1",
        "--windows=12",
        "--invokes=50",
        "--ingest-seconds=0.5",
        "--settle-s=0.1",
        "--scale-sources=1,2",
        "--scale-seconds=0.3",
    ],
    "mqtt_bench.py": [
        "--repeats=1",
        f"--messages={MESSAGES}",
        "--backlog=200",
        "--latency-seconds=0.2",
    ],
    "sd_wear.py": ["--seconds=2", "--runs", "normal:0", "normal:1"],
    "consumer_bench.py": ["--repeats=1", "--messages=200", "--devices=2"],
    "parity.py": ["--test-records=1", "--engines=3"],
    "frontend_bench.py": ["--repeats=1", "--windows=3"],
    "cmapss_validation.py": [],  # the committed bundle; its validation split is small
}
NUMBER = r"[\d,.]+"


def _rows(out: str, header: str) -> list[list[str]]:
    """The body rows of the markdown table whose header line starts with `header`."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    assert re.fullmatch(r"\|(---\|)+", lines[start + 1]), lines[start + 1]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_every_bench_script_runs_with_tiny_arguments() -> None:
    """Test that each bench/ script exits 0 and prints its tables with a value in every row."""
    assert {p.name for p in (REPO_ROOT / "bench").glob("*.py")} == set(ARGS)
    processes = {  # side by side: each mostly waits on its own subprocesses and broker
        name: subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "bench" / name), *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in ARGS.items()
    }
    outputs = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name}:\n{err}"
        assert "Traceback" not in err, err
        outputs[name] = out

    agent = outputs["agent_bench.py"]
    models = _rows(agent, "| bundle | raw invoke()/s")
    assert [row[0] for row in models] == [
        "vibration-fault",
        "vibration-anomaly",
        "cmapss-fd001-rul",
    ]
    assert all(re.fullmatch(NUMBER, cell) for row in models for cell in row[1:4]), models
    for out in (agent, outputs["frontend_bench.py"]):
        frontend = _rows(out, "| front end, 3 x 8192 window")
        assert [row[0] for row in frontend] == [
            "one numpy rfft of the window (float64)",
            "vibration-fault alone",
            "vibration-anomaly alone",
            "both, each computing its own spectra",
            "both, sharing the source's spectra (the agent)",
            "both, shared, steps of bundles 1.0.0 (Hilbert envelope, symmetric Hann)",
        ]
        assert all(re.fullmatch(NUMBER, cell) for row in frontend for cell in row[1:]), frontend
        assert re.search(r"sensors per core; .*: (met|\*\*missed\*\*)\.", out), out
    ingest = _rows(agent, "| ingest, 3-axis 25.6 kHz")
    assert len(ingest) == 3 and all(re.fullmatch(NUMBER, row[1]) for row in ingest), ingest
    process = dict(_rows(agent, "| process (3 bundles loaded"))
    assert re.fullmatch(rf"{NUMBER} MB", process["RSS while serving"]), process
    assert re.fullmatch(rf"{NUMBER} s", process["process start to first result"]), process
    memory = _rows(agent, "| RSS serving the 3 reference bundles")
    assert len(memory) == 4 and all(re.fullmatch(NUMBER, row[1]) for row in memory), memory
    scale = _rows(agent, "| sensors x models")
    assert [row[0] for row in scale] == ["1 x 1", "2 x 1", "1 x 2", "2 x 2"], scale
    imports = _rows(agent, "| import (one process")
    assert all(re.fullmatch(r"-?[\d.]+", row[1]) for row in imports), imports

    mqtt = outputs["mqtt_bench.py"]
    delivery = _rows(mqtt, f"| path ({MESSAGES} QoS 1 messages acknowledged;")
    assert [row[0] for row in delivery] == [
        "bare paho publish, same payloads",
        "bare paho, window kept by the caller (paho's limit off, as the agent)",
        *(f"agent publisher via spool, fsync={f}" for f in ("normal", "always", "off")),
    ]
    # Not a timing: every message reached the subscriber on both sides.
    assert [row[4] for row in delivery] == [f"{MESSAGES}/{MESSAGES}"] * 5
    latency = _rows(mqtt, "| sensor row published -> result at subscriber")
    assert [row[0] for row in latency] == ["100 windows/s", "1,000 windows/s"]
    assert all(int(row[3]) > 0 for row in latency), latency
    added = {row[0]: row for row in _rows(mqtt, "| delivery per result (C-MAPSS pipeline")}
    assert added["agent, MQTT sink until every result is acknowledged"][2] == "100/100"
    verdict = added["added by MQTT / bare paho (target <= 100%)"][1]
    assert re.fullmatch(rf"{NUMBER}%: (met|\*\*missed\*\*)", verdict), verdict
    drain = {row[0]: row[1] for row in _rows(mqtt, "| backlog of 200 results after an outage")}
    assert re.fullmatch(rf"{NUMBER} msg/s", drain["drain rate"]), drain
    validation = _rows(outputs["cmapss_validation.py"], "| bundle | version | validation data")
    assert [row[0] for row in validation] == ["cmapss-fd001-rul"], validation
    assert all(re.fullmatch(NUMBER, cell) for cell in validation[0][3:]), validation

    wear = _rows(outputs["sd_wear.py"], "| fsync | commit_interval_s")
    assert [row[:2] for row in wear] == [["normal", "0"], ["normal", "1"]], wear
    assert all(float(row[3].replace(",", "")) > 0 for row in wear), wear  # bytes really written
