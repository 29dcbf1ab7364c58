"""The spool's write-ahead log checkpoints, on a thread and connection of their own.

Left to SQLite, the commit that crosses the WAL threshold copies the log into the database
and fsyncs both: a 10-20 ms stall of the agent thread every few hundred commits here (far more
on an SD card), which every result queued behind it waits out. Here a PASSIVE checkpoint runs
shortly after commits without blocking them; only when the log has grown past its limit does a
RESTART (so the next commit starts the log from the beginning) take the spool's lock, and by
then nearly everything is copied: 1-5 ms. Past 1.5 times the limit a commit restarts the log
itself (Spool._log_written), so a checkpointer that falls behind or keeps failing can never let
the log outgrow its share of the cap.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections import Counter
from pathlib import Path

log = logging.getLogger("edge_agent.mqtt.spool")

DELAY_S = 0.05  # after a commit, wait this long so one checkpoint covers many commits


class WalCheckpointer:
    def __init__(
        self, path: Path, synchronous: str, lock: threading.RLock, counters: Counter[str]
    ) -> None:
        self.path, self.synchronous = path, synchronous
        self.max_frames = 0  # frames the log may hold before a RESTART; set by the spool
        self.counters = counters  # the spool's: checkpoints, wal_restarts, checkpoint_failures
        self.fault: str | None = None  # why the last checkpoint failed; None after a success
        self._lock = lock  # the spool's: a RESTART must not interleave with its transactions
        # Held while a checkpoint runs, so the spool's own RESTART (Spool._log_written) waits for
        # one in progress instead of being refused. Order: the spool's lock first, then this.
        self.running = threading.Lock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Called after each commit that wrote to the log."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(DELAY_S):
                return
            self._wake.clear()
            try:
                self.checkpoint()
            except (sqlite3.Error, OSError) as exc:  # Spool._log_written still bounds the log
                self.counters["checkpoint_failures"] += 1
                if self.fault is None:
                    log.warning(
                        "spool checkpoint failed; commits checkpoint themselves meanwhile",
                        extra={"spool": str(self.path), "error": f"{type(exc).__name__}: {exc}"},
                    )
                self.fault = f"{type(exc).__name__}: {exc}"
                continue
            if self.fault is not None:
                log.info("spool checkpoints recovered", extra={"spool": str(self.path)})
            self.fault = None

    def checkpoint(self) -> None:
        # mode=rw: never create a file at a path the spool has lost (spool.check() handles it)
        uri = f"{self.path.resolve().as_uri()}?mode=rw"
        with contextlib.closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as db:
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            # fetchall: a statement left unfinished would hold a read mark and pin the log
            with self.running:
                passive = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0]
            self.counters["checkpoints"] += 1
            if passive[1] > self.max_frames:  # frames in the log
                with self._lock, self.running:
                    db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                self.counters["wal_restarts"] += 1
