"""Structured logs: the rate limiter, and the logfmt format of a real agent process."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.logs import LogfmtFormatter, RateLimiter
from tests.conftest import REPO_ROOT, read_jsonl, run_cli, wait_until


def test_rate_limiter_allows_once_per_key_per_interval() -> None:
    """Test that a key is allowed once, refused until its interval has passed, then allowed."""
    limiter = RateLimiter(0.2)
    started = time.monotonic()
    assert limiter.allow("bad_json") is True
    assert [limiter.allow("bad_json") for _ in range(100)] == [False] * 100
    wait_until(lambda: limiter.allow("bad_json"), 5, "the key to be allowed again")
    assert time.monotonic() - started >= 0.2
    assert limiter.allow("bad_json") is False  # allowing it again restarted its interval


def test_rate_limiter_keys_are_independent() -> None:
    """Test that one key's refusals do not hold back another key, which gets its own once."""
    limiter = RateLimiter(60.0)
    assert limiter.allow("source:a") is True
    assert limiter.allow("source:a") is False
    assert limiter.allow("source:b") is True
    assert limiter.allow("source:b") is False
    assert limiter.allow("source:a") is False


def test_rate_limiter_with_zero_interval_allows_every_line() -> None:
    """Test that repeat_interval_s = 0 (allowed by the config) means no limiting."""
    limiter = RateLimiter(0.0)
    assert all(limiter.allow("k") for _ in range(50))


# One logfmt pair: a bare value without space, quote or '=', or a quoted one with \" and \\.
PAIR = r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^\s"=]+)'
LINE = re.compile(rf"{PAIR}(?: {PAIR})*")
# The LiteRT native library prints this banner itself, outside Python's logging.
UNESCAPE = {"n": "\n", "r": "\r"}
NATIVE_BANNER = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def parse_logfmt(line: str) -> dict[str, str]:
    """Parse one logfmt line strictly: the whole line must be key=value pairs."""
    assert LINE.fullmatch(line), f"not logfmt: {line!r}"
    fields = {}
    for key, value in re.findall(PAIR, line):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", lambda m: UNESCAPE.get(m[1], m[1]), value[1:-1])
        assert key not in fields, f"key {key} twice in {line!r}"
        fields[key] = value
    return fields


def test_parse_logfmt_rejects_what_is_not_logfmt() -> None:
    """Test that the strict parser used below refuses broken lines, so it can fail."""
    assert parse_logfmt('a=1 b="x \\"y\\" z"') == {"a": "1", "b": 'x "y" z'}
    for bad in ('a=1 b="open', "a=1  b=2", "just words", 'a=x"y', "a=1 b=c=d", "a=1 a=2"):
        with pytest.raises(AssertionError):
            parse_logfmt(bad)


def test_logfmt_keeps_a_multiline_value_on_one_line() -> None:
    """Test that a message with newlines, quotes and backslashes stays one parseable line."""
    message = 'bad row 3:\r\n  "x" \\ y\nnext'
    record = logging.makeLogRecord({"msg": message, "levelname": "WARNING", "name": "t"})
    line = LogfmtFormatter().format(record)
    assert "\n" not in line and "\r" not in line
    assert parse_logfmt(line)["msg"] == message


def test_agent_logfmt_lines_are_parseable_key_values(tmp_path: Path) -> None:
    """Test that with format = "logfmt" every log line of a real run parses as key=value pairs."""
    rate = 25600.0
    values = np.random.default_rng(0).normal(size=(int(rate), 3))
    ts = 1_732_440_000.0 + np.arange(len(values)) / rate
    recording = tmp_path / "rec.npz"
    np.savez(recording, ts=ts, ax=values[:, 0], ay=values[:, 1], az=values[:, 2])
    folder = tmp_path
    config = folder / "agent.toml"
    config.write_text(f"""
device_id = "logfmt-dev"
[log]
format = "logfmt"
[[sources]]
kind = "replay"
id = "m1"
path = "{recording}"
[[models]]
bundle = "{REPO_ROOT / "models/vibration-fault"}"
source = "m1"
[[sinks]]
kind = "jsonl"
path = "{folder / "out.jsonl"}"
""")
    result = run_cli("run", "-c", str(config), timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line != NATIVE_BANNER]
    records = [parse_logfmt(line) for line in lines]
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records), records
    assert all(float(r["ts"]) > 1.7e9 for r in records)
    by_msg = {r["msg"]: r for r in records}
    assert by_msg["model loaded"]["model"] == "vibration-fault"
    assert by_msg["agent started"]["device"] == "logfmt-dev"
    # Values with spaces are quoted ("model loaded"); a nested value is one quoted field that
    # still says what happened: 5 results.
    results = [e for e in read_jsonl(folder / "out.jsonl") if e["type"] == "result"]
    assert len(results) == (int(rate) - 8192) // 4096 + 1 == 5
    assert "'results': 5" in by_msg["agent stopped"]["stats"]
