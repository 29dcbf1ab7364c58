"""The spool's write-ahead log is checkpointed by its own thread, not by the commits."""

from __future__ import annotations

import os
from pathlib import Path

from edge_agent.mqtt.spool import Spool
from tests.conftest import wait_until


def _wal_bytes(spool: Spool) -> int:
    return os.stat(f"{spool.path}-wal").st_size


def _commit_one(spool: Spool) -> None:
    spool.put("t", b"x" * 300, 1, False, 0)
    spool.commit()


def test_the_checkpointer_restarts_the_log_before_a_commit_would(tmp_path: Path) -> None:
    """Test that once the log passes its limit the checkpointer thread copies it back and
    restarts it, below SQLite's own threshold, so later commits reuse the log's start."""
    spool = Spool(tmp_path / "s.db", max_bytes=2 * 1024 * 1024)
    limit = spool.checkpointer.max_frames
    page = spool._db.execute("PRAGMA page_size").fetchone()[0]
    while _wal_bytes(spool) <= limit * (page + 24):  # frames: page plus a 24-byte header
        _commit_one(spool)
    assert _wal_bytes(spool) < (limit + limit // 2) * page  # SQLite's threshold not reached
    wait_until(lambda: spool.counters["wal_restarts"] >= 1, 10.0, "a restart of the log")
    size = _wal_bytes(spool)
    for _ in range(5):
        _commit_one(spool)
    assert _wal_bytes(spool) <= size  # written from the start again, not appended
    assert spool.counters["checkpoint_failures"] == 0
    spool.close()


def test_a_failing_checkpointer_is_counted_and_commits_keep_the_log_bounded(
    tmp_path: Path,
) -> None:
    """Test that when the checkpointer cannot open the file it counts the failure and names it,
    creates nothing, and the commits' own checkpoint still bounds the log."""
    spool = Spool(tmp_path / "s.db", max_bytes=2 * 1024 * 1024)
    spool.checkpointer.path = tmp_path / "elsewhere" / "s.db"  # a path it cannot open
    limit = spool.checkpointer.max_frames
    page = spool._db.execute("PRAGMA page_size").fetchone()[0]
    _commit_one(spool)
    wait_until(lambda: spool.counters["checkpoint_failures"] >= 1, 10.0, "a failed checkpoint")
    assert spool.checkpointer.fault is not None and "unable to open" in spool.checkpointer.fault
    assert not (tmp_path / "elsewhere").exists()
    for _ in range(20 * limit):
        _commit_one(spool)
    assert _wal_bytes(spool) <= 2 * limit * (page + 24)
    assert spool.counters["wal_restarts"] == 0
    spool.close()
