"""Store the agent's results and alarm events in SQLite: one row per result, however often the
broker delivers it.

    python examples/sqlite_historian.py --host localhost --port 1883 --db pdm.sqlite3

Subscribes to `<prefix>/+/+/result` and `<prefix>/+/+/alarm/event` at QoS 1, validates every
payload against the contract with edge_agent.mqtt.consumer.ResultTracker (which also drops
duplicates it has seen), and writes:

- `results`: one row per (device, model, seq), the primary key, so a duplicate that arrives
  after a restart of this program is ignored too;
- `alarms`: one row per alarm transition (raised, escalated, acknowledged, cleared).

Each message is committed before it is acknowledged to the broker, so a crash loses nothing.
With `--share GROUP` several copies split the work through an MQTT v5 shared subscription
(`$share/GROUP/...`); the primary keys keep one row per result across them. Ctrl-C (or
SIGTERM) disconnects, closes the database and prints what was stored.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edge_agent.mqtt.consumer import ContractError, ResultTracker

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    device TEXT NOT NULL,
    model TEXT NOT NULL,
    seq INTEGER NOT NULL,
    window_start REAL NOT NULL,
    window_end REAL NOT NULL,
    task TEXT NOT NULL,
    label TEXT,
    confidence REAL,
    score REAL,
    threshold REAL,
    is_anomaly INTEGER,
    rul REAL,
    units TEXT,
    latency_ms REAL NOT NULL,
    historical INTEGER NOT NULL,
    published_at REAL,
    received_at REAL NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (device, model, seq)
);
CREATE TABLE IF NOT EXISTS alarms (
    device TEXT NOT NULL,
    model TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    severity TEXT,
    escalated INTEGER NOT NULL,
    acknowledged INTEGER NOT NULL,
    acknowledged_by TEXT,
    since REAL NOT NULL,
    reason TEXT NOT NULL,
    published_at REAL,
    received_at REAL NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (device, model, seq, state, escalated, acknowledged)
);
CREATE INDEX IF NOT EXISTS results_by_time ON results (device, model, window_end);
"""

# ResultTracker remembers every seq it has accepted; the primary key is the lasting guard, so
# the in-memory tracker is replaced after this many results to keep memory bounded.
TRACKER_LIMIT = 100_000


class Historian:
    """Validates, de-duplicates and stores one message at a time (no MQTT inside)."""

    def __init__(self, db: Path) -> None:
        self.db = sqlite3.connect(db, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives a crash
        self.db.executescript(SCHEMA)
        self.tracker = ResultTracker()
        self.held = 0
        self.stored = {"results": 0, "alarms": 0, "duplicates": 0, "invalid": 0}

    def handle(self, topic: str, payload: bytes) -> str | None:
        """Store one message; returns a line to print for an alarm transition, else None."""
        try:
            message = self.tracker.accept(topic, payload)
        except ContractError as exc:
            self.stored["invalid"] += 1
            print(f"invalid: {exc}", file=sys.stderr, flush=True)
            return None
        if message is None:
            self.stored["duplicates"] += 1
            return None
        data = message.payload
        now = time.time()
        text = payload.decode()
        if message.kind == "result":
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO results VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    data.device,
                    data.model.id,
                    data.seq,
                    data.window.start,
                    data.window.end,
                    data.task,
                    data.label,
                    data.confidence,
                    data.score,
                    data.threshold,
                    data.is_anomaly,
                    data.rul,
                    data.units,
                    data.latency_ms,
                    data.historical,
                    data.published_at,
                    now,
                    text,
                ),
            )
            self.db.commit()
            self.held += 1
            if self.held >= TRACKER_LIMIT:
                self.tracker, self.held = ResultTracker(), 0
            kind = "results"
        elif message.kind == "alarm":
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO alarms VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    data.device,
                    data.model.id,
                    data.seq,
                    data.state,
                    data.severity,
                    bool(data.escalated),
                    bool(data.acknowledged),
                    data.acknowledged_by,
                    data.since,
                    data.reason,
                    data.published_at,
                    now,
                    text,
                ),
            )
            self.db.commit()
            kind = "alarms"
        else:
            return None
        if cursor.rowcount == 0:  # already stored (before a restart, or by another member)
            self.stored["duplicates"] += 1
            return None
        self.stored[kind] += 1
        if kind == "alarms":
            severity = f" {data.severity}" if data.severity else ""
            return f"alarm {data.device}/{data.model.id}: {data.state}{severity} at seq {data.seq}"
        return None

    def close(self) -> None:
        self.db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Store edge-agent results and alarms in SQLite.")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--db", type=Path, default=Path("pdm.sqlite3"))
    parser.add_argument("--prefix", default="pdm", help="the agent's [mqtt] topic_prefix")
    parser.add_argument("--username")
    parser.add_argument("--password-file", type=Path, help="a file holding the password")
    parser.add_argument(
        "--client-id",
        default="pdm-historian",
        help="also the name of the broker session that queues messages while this is stopped",
    )
    parser.add_argument("--share", metavar="GROUP", help="join the shared subscription GROUP")
    args = parser.parse_args(argv)

    historian = Historian(args.db)
    topics = [f"{args.prefix}/+/+/result", f"{args.prefix}/+/+/alarm/event"]
    if args.share:
        topics = [f"$share/{args.share}/{topic}" for topic in topics]
    stop = threading.Event()
    lock = threading.Lock()

    def on_connect(client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            print(f"broker refused the connection: {reason}", file=sys.stderr, flush=True)
            return
        client.subscribe([(topic, 1) for topic in topics])

    def on_subscribe(_client, _userdata, _mid, reasons, _properties) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            print(f"subscription refused: {', '.join(refused)}", file=sys.stderr, flush=True)
            stop.set()
            return
        print(f"subscribed to {', '.join(topics)}; writing {args.db}", flush=True)

    def on_message(_client, _userdata, message: mqtt.MQTTMessage) -> None:
        with lock:
            line = historian.handle(message.topic, message.payload)
        if line:
            print(line, flush=True)

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv5
    )
    if args.username:
        password = args.password_file.read_text().strip() if args.password_file else None
        client.username_pw_set(args.username, password)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.reconnect_delay_set(1, 30)
    # A session kept for a day: QoS 1 messages published while this program is stopped wait
    # at the broker (the agent's own spool covers the agent's side).
    properties = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 86400
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        client.connect(args.host, args.port, clean_start=False, properties=properties)
    except OSError as exc:
        print(f"cannot connect to {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    with lock:
        historian.close()
    counts = historian.stored
    print(
        f"stopped: {counts['results']} results and {counts['alarms']} alarm events stored, "
        f"{counts['duplicates']} duplicates skipped, {counts['invalid']} invalid",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
