"""Storage faults under the spool, on real filesystems mounted by the test (it runs as root, as
.ci/run does): a 1 MB tmpfs filled to the last byte, an ext4 image whose filesystem stops
accepting writes, and an unwritable spool directory at start. The agent keeps inferring,
publishes `degraded`, recovers on its own, and loses nothing beyond what it counts."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.mqtt.contract import HealthEvent, StatusPayload
from tests.conftest import (
    Broker,
    Subscriber,
    agent_config,
    read_jsonl,
    run_cli,
    start_agent,
    wait_for_more,
    wait_until,
)

DEVICE = "disk1"
EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32): the filesystem refuses all I/O
SHUTDOWN_NOLOGFLUSH = 2


def _sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


@contextlib.contextmanager
def _mounted(target: Path, *args: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("storage-fault tests mount filesystems and need root (as in .ci/run)")
    target.mkdir(parents=True, exist_ok=True)
    _sh("mount", *args, str(target))
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Write a file until the filesystem says ENOSPC."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(descriptor, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(descriptor)
    return filler


def _config(folder: Path, broker: Broker, spool: Path) -> Path:
    config = agent_config(
        folder,
        DEVICE,
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true\nblock_samples = 2048',
        [("vibration-fault", "motor")],
        broker_port=broker.port,
        mqtt_options="reconnect_min_s = 1\nreconnect_max_s = 1",
        mqtt_sink=True,
        sink_options="metrics_interval_s = 0.5",
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{folder / "local.jsonl"}"\n'
        "[supervisor]\ncheck_interval_s = 0.2",
    )
    text = config.read_text().replace(f'spool_dir = "{folder / "spool"}"', f'spool_dir = "{spool}"')
    config.write_text(text)
    return config


def _logged(log: Path, message: str) -> list[dict]:
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    return [entry for entry in map(json.loads, lines) if entry.get("msg") == message]


def _produced(folder: Path) -> set[int]:
    return {e["seq"] for e in read_jsonl(folder / "local.jsonl") if e["type"] == "result"}


def _received(sub: Subscriber) -> set[int]:
    return {p["seq"] for p in sub.payloads("/vibration-fault/result")}


def _publisher_metrics(sub: Subscriber) -> dict:
    metrics = sub.payloads("/metrics")
    return metrics[-1]["sinks"]["MqttPublisher"] if metrics else {}


def test_full_disk_keeps_inferring_degrades_and_recovers(
    durable_broker: Broker, tmp_path: Path
) -> None:
    """Test a 1 MB tmpfs filled during a broker outage: inference goes on, the agent reports
    degraded (log, retained status, health event) once the broker is back, and when space is
    freed every result produced meanwhile is delivered."""
    with _mounted(tmp_path / "spool", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as spool:
        log = tmp_path / "agent.log"
        sub = Subscriber(durable_broker, f"pdm/{DEVICE}/#")
        agent = start_agent(_config(tmp_path, durable_broker, spool), stderr=log.open("w"))
        try:
            wait_until(lambda: len(_received(sub)) >= 2, 30, "results before the fault")
            durable_broker.stop()  # an outage: the spool must grow, and now it cannot
            filler = _fill(spool)
            wait_until(lambda: _logged(log, "degraded"), 30, "degraded in the log")
            faulted_at = time.monotonic()
            degraded = _logged(log, "degraded")[0]
            assert any("spool" in reason for reason in degraded["reasons"]), degraded
            wait_for_more(lambda: len(_produced(tmp_path)), 10, 30, "inference goes on")
            durable_broker.start()
            wait_until(
                lambda: (
                    sub.payloads("/status") and sub.payloads("/status")[-1]["state"] == "degraded"
                ),
                30,
                "the retained status says degraded",
            )
            filler.unlink()
            wait_until(lambda: sub.payloads("/status")[-1]["state"] == "online", 30, "online again")
            recovered_after = time.monotonic() - faulted_at
            wait_until(lambda: max(_produced(tmp_path)) in _received(sub), 30, "the newest result")
            wait_until(lambda: _publisher_metrics(sub).get("recoveries", 0) >= 1, 10, "metrics")
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=20)
            sub.close()
        assert agent.returncode == 0, log.read_text()[-2000:]
    metrics = _publisher_metrics(sub)
    produced, received = _produced(tmp_path), _received(sub)
    print(
        f"full disk: recovered {recovered_after:.1f} s after the fault; "
        f"{metrics['write_failures']} failed writes; "
        f"{metrics['written_from_memory']} written from memory; {len(produced)} results"
    )
    assert produced <= received, sorted(produced - received)
    assert metrics.get("dropped_memory_full", 0) == 0
    status = StatusPayload.model_validate(
        next(s for s in sub.payloads("/status") if s["state"] == "degraded")
    )
    assert status.reasons and "full" in status.reasons[0]
    events = [HealthEvent.model_validate(e) for e in sub.payloads("/health/event")]
    assert [e.severity for e in events][:1] == ["critical"] and events[-1].state == "online"
    assert "Traceback" not in log.read_text()


def test_filesystem_that_stops_writing_degrades_then_recovers_on_a_new_one(
    broker: Broker, tmp_path: Path
) -> None:
    """Test an ext4 spool filesystem shut down mid-run (every write fails, as on an SD card
    whose filesystem went read-only after errors): inference goes on, `degraded` is published
    at once, and when a working filesystem is mounted in its place the spool is recreated and
    results flow again. (Linux refuses `mount -o remount,ro` while the spool holds its files
    open for writing, "mount point is busy", so a read-only remount cannot be staged.)"""
    image = tmp_path / "spool.img"
    _sh("truncate", "-s", "16M", str(image))
    _sh("mkfs.ext4", "-q", "-F", str(image))
    spool = tmp_path / "spool"
    with _mounted(spool, "-o", "loop", str(image)):
        log = tmp_path / "agent.log"
        sub = Subscriber(broker, f"pdm/{DEVICE}/#")
        agent = start_agent(_config(tmp_path, broker, spool), stderr=log.open("w"))
        try:
            wait_until(lambda: len(_received(sub)) >= 2, 30, "results before the fault")
            descriptor = os.open(spool, os.O_RDONLY)
            try:
                fcntl.ioctl(descriptor, EXT4_IOC_SHUTDOWN, struct.pack("I", SHUTDOWN_NOLOGFLUSH))
            finally:
                os.close(descriptor)
            faulted_at = time.monotonic()
            wait_until(
                lambda: sub.payloads("/status")[-1]["state"] == "degraded", 30, "degraded status"
            )
            degraded_after = time.monotonic() - faulted_at
            during = wait_for_more(lambda: len(_produced(tmp_path)), 10, 30, "inference goes on")
            # Mounted over the dead filesystem, not after unmounting it: in between, the path
            # would be the plain directory beneath, and the spool could recover there unseen.
            with _mounted(spool, "-t", "tmpfs", "-o", "size=8m", "tmpfs"):
                replaced_at = time.monotonic()
                wait_until(
                    lambda: sub.payloads("/status")[-1]["state"] == "online", 30, "online again"
                )
                recovered_after = time.monotonic() - replaced_at
                mark = max(_produced(tmp_path))
                wait_until(lambda: max(_received(sub)) > mark, 30, "results flow again")
                assert any(spool.glob("*.sqlite3")), "the spool was recreated on the new mount"
                agent.send_signal(signal.SIGTERM)
                agent.wait(timeout=20)
        finally:
            agent.kill()
            sub.close()
    assert agent.returncode == 0, log.read_text()[-2000:]
    produced, received = _produced(tmp_path), _received(sub)
    after_fault = {s for s in produced if s > during}
    print(
        f"I/O failure: degraded after {degraded_after:.1f} s, online {recovered_after:.1f} s "
        f"after the new mount; lost {len(produced - received)} of {len(produced)}"
    )
    assert after_fault <= received, sorted(after_fault - received)
    reasons = next(s for s in sub.payloads("/status") if s["state"] == "degraded")["reasons"]
    assert any("spool" in r for r in reasons), reasons
    assert "Traceback" not in log.read_text()


def test_unwritable_spool_directory_is_one_line_at_check_and_start(tmp_path: Path) -> None:
    """Test that a spool directory on a read-only filesystem is named in one line by
    check-config and by run, which exit 2 instead of a traceback."""
    with _mounted(tmp_path / "ro", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs") as readonly:
        broker = Broker.__new__(Broker)
        broker.port = 1883
        config = _config(tmp_path, broker, readonly / "spool")
        for command in ("check-config", "run"):
            args = [str(config)] if command == "check-config" else ["-c", str(config)]
            result = run_cli(command, *args, timeout=60)
            errors = [x for x in result.stderr.splitlines() if x.startswith("edge-agent: ")]
            assert result.returncode == 2, result.stderr
            assert errors == [
                f"edge-agent: error: spool directory {readonly / 'spool'} is not writable "
                "(Read-only file system)"
            ], result.stderr
            assert "Traceback" not in result.stderr
