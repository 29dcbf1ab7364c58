"""Store-and-forward spool: every outgoing message is durably written before it is offered to the
broker and deleted only after its PUBACK.

SQLite in WAL mode. Writes are grouped per batch of sample blocks (one transaction per
`commit()`), so the cost of durability is paid per batch, not per message.
`fsync = "always"` (synchronous=FULL) survives power loss; `"normal"` (synchronous=NORMAL)
survives a crash or kill -9 of the agent but may lose the last transactions on power loss;
`"off"` trusts the OS entirely.
Bounded by bytes and age; when full, routine results are dropped before alarms, and every drop
is counted by reason.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SYNCHRONOUS = {"always": "FULL", "normal": "NORMAL", "off": "OFF"}
PRIORITY_ROUTINE, PRIORITY_ALARM = 0, 1


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Spool:
    def __init__(
        self,
        path: Path,
        max_bytes: int = 100 * 1024 * 1024,
        max_age_s: float = 7 * 86400.0,
        full_policy: Literal["drop_oldest", "drop_new"] = "drop_oldest",
        fsync: Literal["always", "normal", "off"] = "normal",
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes, self.max_age_s, self.full_policy = max_bytes, max_age_s, full_policy
        self.counters: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={SYNCHRONOUS[fsync]}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, "
            "retain INTEGER NOT NULL, priority INTEGER NOT NULL, created REAL NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sequences (model TEXT PRIMARY KEY, seq INTEGER NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS by_priority ON messages (priority, id)")
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages")
        self.count, self.bytes = row.fetchone()
        self._in_transaction = False
        self._next_expiry = 0.0
        self._pending: list[tuple] = []
        self._pending_sequences: dict[str, int] = {}

    # ---- writing (agent thread) -------------------------------------------------------------
    def put(self, topic: str, payload: bytes, qos: int, retain: bool, priority: int) -> None:
        """Queue a message for the next commit(), which makes it durable (one transaction)."""
        self._pending.append((topic, payload, qos, int(retain), priority, time.time()))

    def set_sequence(self, model: str, seq: int) -> None:
        """Remember a model's last sequence number; stored with the next commit()."""
        self._pending_sequences[model] = seq

    def sequence(self, model: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM sequences WHERE model = ?", (model,)).fetchone()
        return int(row[0]) if row else 0

    def commit(self) -> None:
        """Write everything queued since the last commit in one transaction."""
        pending, self._pending = self._pending, []
        sequences, self._pending_sequences = self._pending_sequences, {}
        with self._lock:
            admitted = []
            for row in pending:
                if self._make_room(len(row[1]), row[4]):
                    admitted.append(row)
                    self.count += 1
                    self.bytes += len(row[1])
                else:
                    self.counters["dropped_full_new"] += 1
            if admitted or sequences:
                self._begin()
                self._db.executemany(
                    "INSERT INTO messages (topic, payload, qos, retain, priority, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    admitted,
                )
                self._db.executemany(
                    "INSERT INTO sequences (model, seq) VALUES (?, ?) "
                    "ON CONFLICT(model) DO UPDATE SET seq = excluded.seq",
                    list(sequences.items()),
                )
                self.counters["spooled"] += len(admitted)
            if self._in_transaction:
                self._db.execute("COMMIT")
                self._in_transaction = False

    def _begin(self) -> None:
        if not self._in_transaction:
            self._db.execute("BEGIN")
            self._in_transaction = True

    def _make_room(self, size: int, priority: int) -> bool:
        """Apply the age limit and the full policy; False if the new message must be dropped."""
        self._expire()
        if self.bytes + size <= self.max_bytes:
            return True
        if self.full_policy == "drop_new" and priority == PRIORITY_ROUTINE:
            return False
        # Oldest routine messages go first; alarms only when nothing routine is left.
        for level in (PRIORITY_ROUTINE, PRIORITY_ALARM):
            if level > priority:
                break
            while self.bytes + size > self.max_bytes:
                row = self._db.execute(
                    "SELECT id, LENGTH(payload) FROM messages WHERE priority = ? "
                    "ORDER BY id LIMIT 1",
                    (level,),
                ).fetchone()
                if row is None:
                    break
                self._begin()
                self._db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
                self.count -= 1
                self.bytes -= row[1]
                self.counters["dropped_full_oldest_alarm" if level else "dropped_full_oldest"] += 1
        return self.bytes + size <= self.max_bytes

    def _expire(self) -> None:
        now = time.time()
        if now < self._next_expiry:
            return
        self._next_expiry = now + 1.0  # an age limit needs no sub-second precision
        cutoff = now - self.max_age_s
        self._begin()
        cursor = self._db.execute(
            "DELETE FROM messages WHERE created < ? RETURNING LENGTH(payload)", (cutoff,)
        )
        removed = cursor.fetchall()
        if removed:
            self.count -= len(removed)
            self.bytes -= sum(r[0] for r in removed)
            self.counters["dropped_expired"] += len(removed)

    # ---- reading and acknowledging (sender thread) -------------------------------------------
    def fetch(self, after_id: int, limit: int, max_id: int | None = None) -> list[SpooledMessage]:
        """Messages with after_id < id (<= max_id), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, created FROM messages "
                "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (after_id, max_id if max_id is not None else 2**62, limit),
            ).fetchall()
        return [SpooledMessage(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    def last_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0])

    def delete(self, ids: list[int]) -> None:
        """Forget acknowledged messages (committed at once: an ack is final)."""
        with self._lock:
            self._begin()
            for first in range(0, len(ids), 500):
                chunk = ids[first : first + 500]
                marks = ",".join("?" * len(chunk))
                removed = self._db.execute(
                    f"DELETE FROM messages WHERE id IN ({marks}) RETURNING LENGTH(payload)", chunk
                ).fetchall()
                self.count -= len(removed)
                self.bytes -= sum(r[0] for r in removed)
                self.counters["acknowledged"] += len(removed)
            if self._in_transaction:
                self._db.execute("COMMIT")
                self._in_transaction = False

    def close(self) -> None:
        self.commit()
        with self._lock:
            self._db.close()
