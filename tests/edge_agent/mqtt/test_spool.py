"""The on-disk spool: durable across reopen, bounded by its real size on disk, alarms kept over
results, storage faults held in memory and recovered, every drop counted."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edge_agent.mqtt.spool import (
    PRIORITY_ALARM,
    PRIORITY_ROUTINE,
    ROW_OVERHEAD,
    Spool,
    adopt_legacy,
)

ROW = 100 + len("t") + ROW_OVERHEAD  # what one `_fill` message costs against the cap


def _fill(spool: Spool, n: int, priority: int = PRIORITY_ROUTINE, size: int = 100) -> None:
    for i in range(n):
        spool.put("t", bytes([i % 256]) * size, 1, False, priority)
    spool.commit()


def _capacity_for(rows: int) -> int:
    """A max_bytes whose data budget holds exactly `rows` test rows."""
    max_bytes = 64 * 1024
    while Spool.data_budget(max_bytes) // ROW < rows:
        max_bytes += 256
    while Spool.data_budget(max_bytes) // ROW > rows:
        max_bytes -= 1
    return max_bytes


def test_committed_messages_survive_reopen_and_uncommitted_do_not(tmp_path: Path) -> None:
    """Test that a commit is the durability boundary: reopening shows exactly what was committed."""
    spool = Spool(tmp_path / "s.db")
    _fill(spool, 5)
    spool.put("t", b"x", 1, False, PRIORITY_ROUTINE)  # not committed
    spool.set_sequence("m", 5)
    spool._db.close()  # as if the process died here: the open transaction is lost
    reopened = Spool(tmp_path / "s.db")
    assert reopened.count == 5 and reopened.bytes == 5 * ROW
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
    spool = Spool(tmp_path / "s.db", max_bytes=_capacity_for(10))
    _fill(spool, 2, PRIORITY_ALARM)
    _fill(spool, 8)
    _fill(spool, 5)  # five more rows: the five oldest results must go
    assert spool.count == 10
    assert spool.counters["dropped_full_oldest"] == 5
    rows = spool._db.execute("SELECT priority FROM messages ORDER BY id").fetchall()
    assert [r[0] for r in rows[:2]] == [PRIORITY_ALARM, PRIORITY_ALARM]


def test_drop_new_refuses_results_but_admits_alarms(tmp_path: Path) -> None:
    """Test that drop_new refuses a new result when full, yet an alarm displaces old results."""
    spool = Spool(tmp_path / "s.db", max_bytes=_capacity_for(5), full_policy="drop_new")
    _fill(spool, 5)
    _fill(spool, 1)
    assert spool.counters["dropped_full_new"] == 1 and spool.count == 5
    _fill(spool, 1, PRIORITY_ALARM)
    assert spool.counters["dropped_full_oldest"] == 1
    assert spool.fetch(0, 10)[-1].id == 6  # the refused result never took an id


def test_alarms_alone_are_dropped_oldest_first(tmp_path: Path) -> None:
    """Test that with only alarms left, the oldest alarm makes room and that is counted."""
    spool = Spool(tmp_path / "s.db", max_bytes=_capacity_for(3))
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


def test_files_on_disk_stay_within_the_cap_under_churn(tmp_path: Path) -> None:
    """Test that database plus write-ahead log stay under max_bytes while far more than the cap
    is written, acknowledged and dropped (the log is checkpointed and truncated)."""
    cap = 512 * 1024
    spool = Spool(tmp_path / "s.db", max_bytes=cap)
    largest = 0
    for batch in range(300):
        _fill(spool, 40, size=300)
        if batch % 3 == 0:
            spool.delete([m.id for m in spool.fetch(0, 60)])
        largest = max(largest, spool.disk_bytes())
    assert spool.counters["spooled"] * 300 > 6 * cap  # far more than the cap went through
    assert spool.counters["dropped_full_oldest"] > 0
    assert largest <= cap, f"{largest} bytes on disk, cap {cap}"


def test_full_disk_holds_in_memory_and_recovers(tmp_path: Path) -> None:
    """Test that SQLite's real 'database or disk is full' (a page limit) leaves messages in the
    bounded memory overflow with a fault named, and that they are written once room returns."""
    spool = Spool(tmp_path / "s.db", retry_interval_s=0.0)
    _fill(spool, 3)
    pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
    spool._db.execute(f"PRAGMA max_page_count={pages}")
    _fill(spool, 200, size=1000)
    assert spool.fault is not None and "full" in spool.fault
    assert spool.overflow_count == 200 and spool.count == 3
    spool._db.execute("PRAGMA max_page_count=1000000")
    spool.set_sequence("m", 7)
    _fill(spool, 1)
    assert spool.fault is None and spool.overflow_count == 0
    assert spool.count == 204 and spool.counters["written_from_memory"] == 201
    assert Spool(tmp_path / "s.db").sequence("m") == 7


def test_memory_overflow_is_bounded_and_keeps_alarms(tmp_path: Path) -> None:
    """Test that while the disk refuses, memory holds at most memory_max_bytes, dropping
    routine results before alarms and counting each."""
    spool = Spool(tmp_path / "s.db", memory_max_bytes=20 * ROW, retry_interval_s=3600)
    spool._db.execute("PRAGMA query_only=1")  # every write now fails, as on a read-only mount
    _fill(spool, 2, PRIORITY_ALARM)
    _fill(spool, 30)
    assert spool.fault is not None
    assert spool.overflow_count == 20
    assert spool.counters["dropped_memory_full"] == 12
    assert sum(1 for row in spool._overflow if row[4] == PRIORITY_ALARM) == 2


def test_failed_delete_is_never_offered_again(tmp_path: Path) -> None:
    """Test that an acknowledged message whose delete failed is not fetched again, and is
    deleted once the disk takes writes."""
    spool = Spool(tmp_path / "s.db")
    _fill(spool, 3)
    spool._db.execute("PRAGMA query_only=1")
    spool.delete([1])
    assert [m.id for m in spool.fetch(0, 10)] == [2, 3] and spool.count == 3
    spool._db.execute("PRAGMA query_only=0")
    spool.delete([])
    assert spool.count == 2 and spool.counters["acknowledged"] == 1


def test_oldest_put_is_the_oldest_unacknowledged_message(tmp_path: Path) -> None:
    """Test that oldest_put() (the spool-age gauge) gives the put time of the oldest message not
    yet acknowledged: past rows acknowledged but not yet deleted, from the memory overflow while
    the disk refuses writes, and None when there is none."""
    spool = Spool(tmp_path / "s.db", retry_interval_s=3600)
    assert spool.oldest_put() is None
    _fill(spool, 3)
    first, second, third = spool.fetch(0, 10)
    assert spool.oldest_put() == first.created
    spool.delete([first.id], at_once=False)  # acknowledged; the row goes with the next commit
    assert spool.oldest_put() == second.created
    spool._db.execute("PRAGMA query_only=1")
    spool.delete([second.id, third.id])  # the delete fails: the rows stay, acknowledged
    _fill(spool, 2)  # the disk refuses: held in memory
    assert spool.fault is not None and spool.overflow_count == 2
    assert spool.oldest_put() == min(row[5] for row in spool._overflow) > third.created
    spool._db.execute("PRAGMA query_only=0")
    spool._next_retry = 0.0
    spool.commit()  # room again: the acknowledged rows go, the held ones are written
    assert spool.fault is None and spool.count == 2
    fourth, fifth = spool.fetch(0, 10)
    spool.delete([fourth.id, fifth.id])
    assert spool.oldest_put() is None


def test_deleted_file_is_recreated_with_its_messages(tmp_path: Path) -> None:
    """Test that a spool file removed from under the agent is noticed and rewritten at the same
    path with every message it held."""
    path = tmp_path / "s.db"
    spool = Spool(path)
    _fill(spool, 4)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    spool.check()
    assert spool.counters["file_recreated"] == 1
    assert spool.fault is None and path.exists()
    assert [m.payload[:1] for m in spool.fetch(0, 10)] == [b"\x00", b"\x01", b"\x02", b"\x03"]
    # Ids continue above the old file's, so a sender's cursor (at 4) still sees new messages.
    assert [m.id for m in spool.fetch(0, 10)] == [5, 6, 7, 8]


def test_spool_refuses_a_file_written_for_another_identity(tmp_path: Path) -> None:
    """Test that a spool written for one broker is never reused for another."""
    Spool(tmp_path / "s.db", identity={"broker": "a:1883"}).close()
    with pytest.raises(ValueError, match="a:1883"):
        Spool(tmp_path / "s.db", identity={"broker": "b:1883"})


def test_spool_from_before_identities_is_adopted_with_its_backlog(tmp_path: Path) -> None:
    """Test that a spool file of the first schema (no meta table, named after the device) is
    moved to the per-broker name on upgrade and keeps every message and sequence."""
    legacy = tmp_path / "rig1.sqlite3"
    db = sqlite3.connect(legacy, isolation_level=None)
    db.executescript(
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, "
        "priority INTEGER NOT NULL, created REAL NOT NULL);"
        "CREATE TABLE sequences (model TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
        "INSERT INTO messages (topic, payload, qos, retain, priority, created) "
        "VALUES ('t', x'7b7d', 1, 0, 0, 1.0), ('t', x'7b7d', 1, 0, 0, 2.0);"
        "INSERT INTO sequences VALUES ('m', 41);"
    )
    db.close()
    target = tmp_path / "rig1@host_1883-abcd.sqlite3"
    assert adopt_legacy(legacy, target) and not legacy.exists()
    spool = Spool(target, identity={"device": "rig1", "broker": "host:1883"}, max_age_s=1e12)
    assert spool.count == 2 and spool.sequence("m") == 41
    meta = dict(spool._db.execute("SELECT key, value FROM meta").fetchall())
    assert meta == {"schema_version": "1", "device": "rig1", "broker": "host:1883"}
    assert not adopt_legacy(legacy, target)  # nothing left to adopt


def test_deferred_acknowledgements_are_hidden_at_once_and_deleted_with_the_next_commit(
    tmp_path: Path,
) -> None:
    """Test that acknowledged messages deleted `at_once=False` are never fetched again, leave
    the rows until the next commit (one transaction for both), and are then gone."""
    spool = Spool(tmp_path / "s.db")
    _fill(spool, 4)
    spool.delete([1, 2], at_once=False)
    assert [m.id for m in spool.fetch(0, 10)] == [3, 4]
    assert spool.count == 4 and spool.live_count == 2
    assert spool._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 4
    _fill(spool, 1)
    assert spool._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 3
    assert spool.count == 3 and spool.live_count == 3 and spool.counters["acknowledged"] == 2


def test_acknowledged_runs_delete_exactly_their_rows_and_keep_the_count(tmp_path: Path) -> None:
    """Test that range deletes of acknowledged runs spare the unacknowledged rows between them."""
    spool = Spool(tmp_path / "s.sqlite3")
    spool.put_many([("t", bytes([i]) * (10 + i)) for i in range(40)], 1, PRIORITY_ROUTINE)
    spool.put("a", b"alarm", 1, True, PRIORITY_ALARM)
    spool.commit()
    ids = [m.id for m in spool.fetch(0, 100)]
    acked = ids[0:10] + ids[11:25] + ids[30:31] + ids[33:41]  # runs with gaps between them
    spool.delete(list(reversed(acked)))  # order of arrival does not matter
    left = spool.fetch(0, 100)
    assert [m.id for m in left] == [ids[10], *ids[25:30], ids[31], ids[32]]
    assert [m.payload for m in left] == [
        bytes([i]) * (10 + i) for i in (10, 25, 26, 27, 28, 29, 31, 32)
    ]
    with sqlite3.connect(spool.path) as db:
        count, size = db.execute(
            "SELECT COUNT(*), SUM(LENGTH(payload) + LENGTH(topic)) FROM messages"
        ).fetchone()
    assert (spool.count, spool.bytes) == (count, size + count * ROW_OVERHEAD) == (8, spool.bytes)
    assert spool.counters["acknowledged"] == len(acked)
    spool.close()
