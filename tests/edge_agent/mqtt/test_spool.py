"""The on-disk spool: durable across reopen, bounded, alarms kept over results, drops counted."""

from __future__ import annotations

import time
from pathlib import Path

from edge_agent.mqtt.spool import PRIORITY_ALARM, PRIORITY_ROUTINE, Spool


def _fill(spool: Spool, n: int, priority: int = PRIORITY_ROUTINE, size: int = 100) -> None:
    for i in range(n):
        spool.put("t", bytes([i % 256]) * size, 1, False, priority)
    spool.commit()


def test_committed_messages_survive_reopen_and_uncommitted_do_not(tmp_path: Path) -> None:
    """Test that a commit is the durability boundary: reopening shows exactly what was committed."""
    spool = Spool(tmp_path / "s.db")
    _fill(spool, 5)
    spool.put("t", b"x", 1, False, PRIORITY_ROUTINE)  # not committed
    spool.set_sequence("m", 5)
    spool._db.close()  # as if the process died here: the open transaction is lost
    reopened = Spool(tmp_path / "s.db")
    assert reopened.count == 5 and reopened.bytes == 500
    assert [m.id for m in reopened.fetch(0, 10)] == [1, 2, 3, 4, 5]
    assert reopened.sequence("m") == 0  # it was in the lost transaction too


def test_ack_deletes_and_fetch_respects_bounds(tmp_path: Path) -> None:
    """Test that delete() forgets acknowledged messages and fetch() honours after/limit/max."""
    spool = Spool(tmp_path / "s.db")
    _fill(spool, 6)
    spool.delete([2, 3])
    assert spool.count == 4 and spool.counters["acknowledged"] == 2
    assert [m.id for m in spool.fetch(0, 10)] == [1, 4, 5, 6]
    assert [m.id for m in spool.fetch(1, 2)] == [4, 5]
    assert [m.id for m in spool.fetch(0, 10, max_id=4)] == [1, 4]


def test_drop_oldest_keeps_alarms(tmp_path: Path) -> None:
    """Test that when full, the oldest results go first and alarms survive."""
    spool = Spool(tmp_path / "s.db", max_bytes=1000)
    _fill(spool, 2, PRIORITY_ALARM)
    _fill(spool, 8)
    _fill(spool, 5)  # 500 more bytes: five oldest results must go
    assert spool.bytes <= 1000
    assert spool.counters["dropped_full_oldest"] == 5
    rows = spool._db.execute("SELECT priority FROM messages ORDER BY id").fetchall()
    assert [r[0] for r in rows[:2]] == [PRIORITY_ALARM, PRIORITY_ALARM]


def test_drop_new_refuses_results_but_admits_alarms(tmp_path: Path) -> None:
    """Test that drop_new refuses a new result when full, yet an alarm displaces old results."""
    spool = Spool(tmp_path / "s.db", max_bytes=500, full_policy="drop_new")
    _fill(spool, 5)
    _fill(spool, 1)
    assert spool.counters["dropped_full_new"] == 1 and spool.count == 5
    _fill(spool, 1, PRIORITY_ALARM)
    assert spool.counters["dropped_full_oldest"] == 1
    assert spool.fetch(0, 10)[-1].id == 6  # the refused result never took an id


def test_alarms_alone_are_dropped_oldest_first(tmp_path: Path) -> None:
    """Test that with only alarms left, the oldest alarm makes room and that is counted."""
    spool = Spool(tmp_path / "s.db", max_bytes=300)
    _fill(spool, 3, PRIORITY_ALARM)
    _fill(spool, 1, PRIORITY_ALARM)
    assert spool.counters["dropped_full_oldest_alarm"] == 1
    assert [m.id for m in spool.fetch(0, 10)] == [2, 3, 4]


def test_age_limit_expires_old_messages(tmp_path: Path) -> None:
    """Test that messages older than max_age_s are dropped and counted as expired."""
    spool = Spool(tmp_path / "s.db", max_age_s=60)
    _fill(spool, 3)
    spool._db.execute("UPDATE messages SET created = ?", (time.time() - 120,))
    spool._next_expiry = 0.0  # expiry runs at most once a second; do not wait for that here
    _fill(spool, 1)
    assert spool.counters["dropped_expired"] == 3 and spool.count == 1
