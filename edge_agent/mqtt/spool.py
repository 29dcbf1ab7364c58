"""Store-and-forward spool: every outgoing message is durably written before it is offered to the
broker and deleted only after its PUBACK.

SQLite in WAL mode. Writes are grouped per batch of sample blocks (one transaction per
`commit()`), so the cost of durability is paid per batch, not per message.
`fsync = "always"` (synchronous=FULL) survives power loss; `"normal"` (synchronous=NORMAL)
survives a crash or kill -9 of the agent but may lose the last transactions on power loss;
`"off"` trusts the OS entirely.

Bounded by what it really takes on disk (database plus write-ahead log, which is checkpointed
and truncated so it stays within an eighth of the cap) and by age; when full, routine results
are dropped before alarms, and every drop is counted by reason.

Storage faults (disk full, read-only remount, I/O errors, the file deleted under us) never end
the agent: messages that cannot be written wait in a bounded in-memory overflow (alarms kept
first, drops counted), `fault` names the problem, and every later commit retries at most every
`retry_interval_s` until the disk takes them again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge_agent.clock import CLOCK, SteadyWall
from edge_agent.mqtt.checkpoint import WalCheckpointer

SCHEMA_VERSION = 1
SYNCHRONOUS = {"always": "FULL", "normal": "NORMAL", "off": "OFF"}
PRIORITY_ROUTINE, PRIORITY_ALARM = 0, 1
ROW_OVERHEAD = 48  # bytes a row costs beyond payload and topic: record header, id, index entry
PAGE_FILL = 0.75  # share of a b-tree page that holds data after deletes at the front
Row = tuple[str, bytes, int, int, int, float]  # topic, payload, qos, retain, priority, created


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


def _cost(row: Row) -> int:
    return len(row[1]) + len(row[0]) + ROW_OVERHEAD


def _totals(db: sqlite3.Connection) -> tuple[int, int]:
    """(messages, bytes counted against the cap) as the database holds them."""
    count, size = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + LENGTH(topic)), 0) FROM messages"
    ).fetchone()
    return count, size + count * ROW_OVERHEAD


def _closed() -> sqlite3.Connection:
    """A connection every use of which raises sqlite3.Error: the spool's state while its file
    cannot be opened, so every path falls into the same fault handling."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.close()
    return db


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Spool:
    def __init__(
        self,
        path: Path,
        max_bytes: int = 100 * 1024 * 1024,
        max_age_s: float = 7 * 86400.0,
        full_policy: Literal["drop_oldest", "drop_new"] = "drop_oldest",
        fsync: Literal["always", "normal", "off"] = "normal",
        identity: dict[str, str] | None = None,
        memory_max_bytes: int = 8 * 1024 * 1024,
        retry_interval_s: float = 5.0,
        clock: SteadyWall = CLOCK,
    ) -> None:
        self.path = path
        self.max_bytes, self.max_age_s, self.full_policy = max_bytes, max_age_s, full_policy
        self.identity = dict(identity or {})
        self.memory_max_bytes = memory_max_bytes
        self.retry_interval_s = retry_interval_s
        self.clock = clock
        self.counters: Counter[str] = Counter()
        self.fault: str | None = None  # why the disk refuses writes now; None when healthy
        self.fault_since: float | None = None
        self._fsync = fsync
        self._wal_budget = self.wal_budget(max_bytes)
        self._data_budget = self.data_budget(max_bytes)
        self._lock = threading.RLock()
        self._overflow: list[Row] = []  # written-nowhere messages while the disk refuses
        self._overflow_bytes = 0
        self._undeleted: set[int] = set()  # acknowledged, but the delete failed: never re-send
        self._next_retry = 0.0
        self._next_expiry = 0.0
        self._pending: list[Row] = []
        self._pending_sequences: dict[str, int] = {}
        self._sequences: dict[str, int] = {}
        self._db, self._inode = _closed(), None
        self._id_floor = 0  # highest message id handed out by this spool
        self.checkpointer = WalCheckpointer(path, SYNCHRONOUS[fsync], self._lock, self.counters)
        self._limit_log(4096)  # SQLite's default page size, until a file is open
        self._reopen()  # a disk that refuses at start is a fault like any other

    def _reopen(self) -> bool:
        try:
            self._db = self._open()
            return True
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
            return False

    def _limit_log(self, page_size: int) -> None:
        """The checkpointer restarts the log at half its budget; a commit restarts it itself
        only past three quarters (`_log_written`), i.e. when the checkpointer cannot keep up."""
        frames = self.checkpointer.max_frames = max(8, self._wal_budget // page_size // 2)
        self._wal_max_bytes = (frames + frames // 2) * page_size

    @staticmethod
    def wal_budget(max_bytes: int) -> int:
        """Room for the write-ahead log, which checkpoints at half of it and is truncated."""
        return max(32 * 1024, max_bytes // 8)

    @classmethod
    def data_budget(cls, max_bytes: int) -> int:
        """Room for messages, counted as payload + topic + ROW_OVERHEAD each."""
        return max(0, int((max_bytes - cls.wal_budget(max_bytes)) * PAGE_FILL))

    # ---- opening ----------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={SYNCHRONOUS[self._fsync]}")
        self._limit_log(page_size)
        db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job (_log_written)
        db.execute(f"PRAGMA journal_size_limit={self._wal_budget // 2}")
        db.executescript(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, "
            "retain INTEGER NOT NULL, priority INTEGER NOT NULL, created REAL NOT NULL);"
            "CREATE TABLE IF NOT EXISTS sequences (model TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE INDEX IF NOT EXISTS by_priority ON messages (priority, id);"
        )
        stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
        for key, value in self.identity.items():
            if key in stored and stored[key] != value:
                db.close()
                raise ValueError(
                    f"{self.path} was written for {key} {stored[key]!r}, not {value!r}"
                )
        db.executemany(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
            [("schema_version", str(SCHEMA_VERSION)), *self.identity.items()],
        )
        if self._id_floor:  # a recreated file: ids continue, so the sender's cursors hold
            found = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
            if found is None:
                db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', ?)",
                    (self._id_floor,),
                )
            elif found[0] < self._id_floor:
                db.execute(
                    "UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages'", (self._id_floor,)
                )
        self._sequences = dict(db.execute("SELECT model, seq FROM sequences").fetchall())
        self.count, self.bytes = _totals(db)
        self._inode = os.stat(self.path).st_ino
        return db

    # ---- writing (agent thread) -------------------------------------------------------------
    def put(self, topic: str, payload: bytes, qos: int, retain: bool, priority: int) -> None:
        """Queue a message for the next commit(), which makes it durable (one transaction)."""
        self._pending.append((topic, payload, qos, int(retain), priority, self.clock.steady()))

    def put_many(self, messages: list[tuple[str, bytes]], qos: int, priority: int) -> None:
        """Queue (topic, payload) pairs that share QoS and priority, not retained (results)."""
        now = self.clock.steady()
        self._pending += [(topic, payload, qos, 0, priority, now) for topic, payload in messages]

    def set_sequence(self, model: str, seq: int) -> None:
        """Remember a model's last sequence number; stored with the next commit()."""
        self._pending_sequences[model] = seq

    def sequence(self, model: str) -> int:
        with self._lock:
            return max(self._sequences.get(model, 0), self._pending_sequences.get(model, 0))

    def commit(self) -> None:
        """Write everything queued since the last commit in one transaction; while the disk
        refuses, keep it in memory and retry no more often than `retry_interval_s`."""
        pending, self._pending = self._pending, []
        sequences, self._pending_sequences = self._pending_sequences, {}
        with self._lock:
            self._sequences.update(sequences)
            if self.fault is not None:
                self._hold(pending)
                if time.monotonic() < self._next_retry:
                    return
                if self._inode is None and not self._reopen():
                    return
                pending, self._overflow, self._overflow_bytes = self._overflow, [], 0
                sequences = dict(self._sequences)
            try:
                self._write(pending, sequences)
            except sqlite3.Error as exc:
                self._rollback()
                self._hold(pending)
                self._fail(exc)
                return
            if self.fault is not None:
                self._recovered(len(pending))

    def _write(self, rows: list[Row], sequences: dict[str, int]) -> None:
        if not rows and not sequences and not self._undeleted:
            return
        self._db.execute("BEGIN")
        removed = self._remove(list(self._undeleted))  # deferred acknowledgements ride along
        self._expire()
        cost = sum([len(row[1]) + len(row[0]) for row in rows]) + ROW_OVERHEAD * len(rows)
        if self.bytes + cost <= self._data_budget:  # the usual case: room for all of them
            admitted, self.bytes, self.count = rows, self.bytes + cost, self.count + len(rows)
        else:
            admitted = [row for row in rows if self._make_room(row)]
        self._db.executemany(
            "INSERT INTO messages (topic, payload, qos, retain, priority, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            admitted,
        )
        if admitted:
            self._id_floor = self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
        self._db.executemany(
            "INSERT INTO sequences (model, seq) VALUES (?, ?) "
            "ON CONFLICT(model) DO UPDATE SET seq = excluded.seq",
            list(sequences.items()),
        )
        self._db.execute("COMMIT")
        self._acknowledged(removed)
        self.counters["spooled"] += len(admitted)
        self._log_written()

    def _log_written(self) -> None:
        """After a transaction: wake the checkpointer, and, as the safety net under it, restart
        the log from this thread once it has grown past its bound (SQLite's own
        autocheckpoint would be skipped while the checkpointer runs, and the log would grow
        past the cap)."""
        self.checkpointer.poke()
        try:
            if os.stat(f"{self.path}-wal").st_size > self._wal_max_bytes:
                with self.checkpointer.running:  # the spool's lock is held: the same order
                    self._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                self.counters["wal_restarts_by_commit"] += 1
        except FileNotFoundError:
            pass  # no log: nothing to bound
        except (OSError, sqlite3.Error):  # the transaction is committed: nothing to undo
            self.counters["checkpoint_failures"] += 1

    def _make_room(self, row: Row) -> bool:
        """Apply the full policy inside the open transaction and count `row` in; False if it
        must be dropped. A rolled-back transaction recounts from the database."""
        size, priority = _cost(row), row[4]
        if self.bytes + size <= self._data_budget:
            self.bytes += size
            self.count += 1
            return True
        if self.full_policy == "drop_new" and priority == PRIORITY_ROUTINE:
            self.counters["dropped_full_new"] += 1
            return False
        # Oldest routine messages go first; alarms only when nothing routine is left.
        for level in (PRIORITY_ROUTINE, PRIORITY_ALARM):
            if level > priority:
                break
            while self.bytes + size > self._data_budget:
                victim = self._db.execute(
                    "SELECT id, LENGTH(payload) + LENGTH(topic) FROM messages "
                    "WHERE priority = ? ORDER BY id LIMIT 1",
                    (level,),
                ).fetchone()
                if victim is None:
                    break
                self._db.execute("DELETE FROM messages WHERE id = ?", (victim[0],))
                self.count -= 1
                self.bytes -= victim[1] + ROW_OVERHEAD
                self.counters["dropped_full_oldest_alarm" if level else "dropped_full_oldest"] += 1
        if self.bytes + size > self._data_budget:
            self.counters["dropped_full_new"] += 1
            return False
        self.bytes += size
        self.count += 1
        return True

    def _expire(self) -> None:
        now = self.clock.steady()  # a stepped system clock must not age everything out
        if now < self._next_expiry:
            return
        self._next_expiry = now + 1.0  # an age limit needs no sub-second precision
        removed = self._db.execute(
            "DELETE FROM messages WHERE created < ? RETURNING LENGTH(payload) + LENGTH(topic)",
            (now - self.max_age_s,),
        ).fetchall()
        if removed:
            self.count -= len(removed)
            self.bytes -= sum(r[0] + ROW_OVERHEAD for r in removed)
            self.counters["dropped_expired"] += len(removed)

    # ---- storage faults ---------------------------------------------------------------------
    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self._recount()

    def _recount(self) -> None:
        """Totals from the database itself after a failed transaction (or keep the last)."""
        with contextlib.suppress(sqlite3.Error):
            self.count, self.bytes = _totals(self._db)

    def _hold(self, rows: list[Row]) -> None:
        """Keep rows in memory, bounded: routine results are dropped before alarms."""
        for row in rows:
            self._overflow.append(row)
            self._overflow_bytes += _cost(row)
        while self._overflow_bytes > self.memory_max_bytes and self._overflow:
            victim = next((i for i, r in enumerate(self._overflow) if r[4] == PRIORITY_ROUTINE), 0)
            row = self._overflow.pop(victim)
            self._overflow_bytes -= _cost(row)
            self.counters[
                "dropped_memory_full_alarm" if row[4] == PRIORITY_ALARM else "dropped_memory_full"
            ] += 1

    def _fail(self, exc: BaseException) -> None:
        self._next_retry = time.monotonic() + self.retry_interval_s
        self.counters["write_failures"] += 1
        if self.fault is None:
            self.fault = f"cannot write {self.path}: {_describe(exc)}"
            self.fault_since = time.time()

    def _recovered(self, written: int) -> None:
        self.fault, self.fault_since = None, None
        self.counters["recoveries"] += 1
        self.counters["written_from_memory"] += written

    def check(self) -> None:
        """Notice a spool file deleted or replaced under us (writes would go to an unlinked
        file and vanish): move what the open file still holds into a new one at the path."""
        with self._lock:
            if self._inode is None:
                return  # not open: commit() retries
            try:
                if os.stat(self.path).st_ino == self._inode:
                    return
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._fail(exc)
                return
            try:
                rows = self._db.execute(
                    "SELECT topic, payload, qos, retain, priority, created FROM messages "
                    "ORDER BY id"
                ).fetchall()
            except sqlite3.Error:
                rows = []
                self.counters["lost_with_file"] += self.count
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self.counters["file_recreated"] += 1
            self._undeleted.clear()
            self._db, self._inode = _closed(), None
            self.count = self.bytes = 0
            self._hold(rows)
            self._fail(FileNotFoundError(f"{self.path} was deleted or replaced"))
            self._next_retry = 0.0
            self.commit()

    @property
    def overflow_count(self) -> int:
        return len(self._overflow)

    def oldest_put(self) -> float | None:
        """When the oldest message not yet acknowledged was put (steady unix s), on disk or held
        in memory; None if there is none."""
        with self._lock:
            held = min((row[5] for row in self._overflow), default=None)  # fault only
            oldest = self.oldest_stored()
        stored = None if oldest is None else oldest[1]
        return min((t for t in (held, stored) if t is not None), default=None)

    def oldest_stored(self) -> tuple[int, float] | None:
        """(id, put time) of the oldest message on disk not yet acknowledged, or None.
        Acknowledged rows waiting for their delete are skipped: at most that many rows are
        read, in id order. Unreadable: None (`fault` already says so)."""
        with self._lock:
            rows: list[tuple[int, float]] = []
            with contextlib.suppress(sqlite3.Error):
                rows = self._db.execute(
                    "SELECT id, created FROM messages ORDER BY id LIMIT ?",
                    (len(self._undeleted) + 1,),
                ).fetchall()
            return next((row for row in rows if row[0] not in self._undeleted), None)

    def disk_bytes(self) -> int:
        """What the spool really occupies: database plus write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    # ---- reading and acknowledging (sender thread) -------------------------------------------
    def fetch(self, after_id: int, limit: int, max_id: int | None = None) -> list[SpooledMessage]:
        """Messages with after_id < id (<= max_id), oldest first; none while unreadable."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, topic, payload, qos, retain, created FROM messages "
                    "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                    (after_id, max_id if max_id is not None else 2**62, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                self._fail(exc)
                return []
        return [
            SpooledMessage(r[0], r[1], r[2], r[3], bool(r[4]), r[5])
            for r in rows
            if r[0] not in self._undeleted
        ]

    def last_id(self) -> int:
        with self._lock:
            try:
                return int(
                    self._db.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
                )
            except sqlite3.Error as exc:
                self._fail(exc)
                return 0

    def delete(self, ids: list[int], at_once: bool = True) -> None:
        """Forget acknowledged messages. They are never offered again from now on; the rows go
        in a transaction of their own (`at_once`), or with the next commit (fewer writes to the
        card). If the disk refuses, the delete is retried with a later commit."""
        with self._lock:
            self._undeleted.update(ids)
            if not at_once or not self._undeleted:
                return
            try:
                self._db.execute("BEGIN")
                removed = self._remove(list(self._undeleted))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._fail(exc)
                return
            self._acknowledged(removed)
            self._log_written()

    def _remove(self, ids: list[int]) -> int:
        """Delete rows inside the open transaction; returns how many there were. Acknowledged
        ids come in runs of consecutive ids (QoS 1 is acknowledged in order), and each run is
        one range delete instead of one lookup per id."""
        removed = 0
        for first, last in _runs(ids):
            count, size = self._db.execute(
                "SELECT COUNT(*), TOTAL(LENGTH(payload) + LENGTH(topic)) FROM messages "
                "WHERE id BETWEEN ? AND ?",
                (first, last),
            ).fetchone()
            if count:
                self._db.execute("DELETE FROM messages WHERE id BETWEEN ? AND ?", (first, last))
                removed += count
                self.bytes -= int(size) + count * ROW_OVERHEAD
        return removed

    def _acknowledged(self, removed: int) -> None:
        self.count -= removed
        self.counters["acknowledged"] += removed
        self._undeleted.clear()

    @property
    def live_count(self) -> int:
        """Messages not yet acknowledged (acknowledged rows may wait for the next commit)."""
        return max(0, self.count - len(self._undeleted))

    def close(self) -> None:
        self.checkpointer.close()
        self.commit()
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids as (first, last) runs of consecutive integers."""
    runs: list[tuple[int, int]] = []
    for id_ in sorted(set(ids)):
        if runs and id_ == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], id_)
        else:
            runs.append((id_, id_))
    return runs


def adopt_legacy(legacy: Path, path: Path) -> bool:
    """Move a spool written before spools were named per broker (`<device>.sqlite3`, schema
    without identity) to `path`, with its write-ahead log, so an upgrade delivers its backlog.
    The caller's Spool then stamps the schema version and identity into it."""
    if path.exists() or not legacy.exists():
        return False
    for suffix in ("-wal", "-shm", ""):
        source = Path(f"{legacy}{suffix}")
        if source.exists():
            source.rename(f"{path}{suffix}")
    return True
