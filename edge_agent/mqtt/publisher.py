"""The MQTT publisher: a sink that spools every event durably, then offers it to the broker.

One sender thread owns publishing. After each (re)connect it publishes the retained status,
then sends live messages first and the backlog (everything spooled before the connect, marked
`historical`) in order beside them, so a long backlog never starves live results. paho re-sends
its own unacknowledged messages after a reconnect; the spool covers everything else, including
a crash of the agent. Reconnects are paho's own (capped exponential backoff).

Every paho callback runs behind the fault boundary, so nothing a broker or a requester sends
can end paho's network thread. The agent's supervisor calls `supervise()` about once a second:
a dead network thread, a dead sender, or a connection that stopped acknowledging
(`stall_timeout_s`) is replaced by a new client, counted and logged, and reported as a problem
until results flow again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from edge_agent.config.mqtt import MqttConfig
from edge_agent.config.sinks import MqttSinkConfig
from edge_agent.events import AlarmEvent, DeploymentEvent, Event, InputHealthEvent, Result
from edge_agent.faults import Boundary, Recovery
from edge_agent.logs import RateLimiter
from edge_agent.mqtt.client import (
    AgentClient,
    connect_async,
    discard,
    make_client,
    network_alive,
    stop_network,
    watch_connection,
)
from edge_agent.mqtt.commands import Answer, CommandRouter, Handler, encode_reply
from edge_agent.mqtt.homeassistant import discovery
from edge_agent.mqtt.spool import (
    PRIORITY_ALARM,
    PRIORITY_ROUTINE,
    Spool,
    SpooledMessage,
    adopt_legacy,
)
from edge_agent.mqtt.topics import Topics
from edge_agent.paths import ensure_writable, state_dir
from edge_agent.telemetry import Histogram

log = logging.getLogger("edge_agent.mqtt")
HEALTH_BACKLOG = 32  # health events kept while disconnected


def broker_key(sink: MqttSinkConfig, broker: MqttConfig) -> str:
    """The broker a spool belongs to: the configured id, else host:port (and TLS)."""
    if sink.broker_id:
        return sink.broker_id
    return f"{broker.host}:{broker.port}" + (" tls" if broker.tls else "")


def spool_path(sink: MqttSinkConfig, broker: MqttConfig, device: str) -> Path:
    """One spool per device and broker, so a backlog is never delivered to another broker."""
    key = broker_key(sink, broker)
    readable = "".join(c if c.isalnum() or c in "-." else "_" for c in key.split(" ")[0])
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    folder = sink.spool_dir if sink.spool_dir is not None else state_dir() / "spool"
    return folder / f"{device}@{readable}-{digest}.sqlite3"


def check_spool_dir(sink: MqttSinkConfig, broker: MqttConfig, device: str) -> Path:
    """The spool's path, after proving its directory is writable (one ConfigError if not)."""
    path = spool_path(sink, broker, device)
    ensure_writable(path.parent, "spool directory")
    return path


def _other_backlogs(path: Path, device: str) -> list[str]:
    return sorted(
        p.name
        for p in path.parent.glob(f"{device}@*.sqlite3")
        if p != path and p.stat().st_size > 0
    )


class MqttPublisher:
    def __init__(
        self,
        config: MqttSinkConfig,
        broker: MqttConfig,
        device: str,
        birth: Callable[[], dict[str, Any]],
        handlers: Mapping[str, Handler] | None = None,
        obeyed: Sequence[str] = (),
        limiter: RateLimiter | None = None,
    ) -> None:
        """`birth` gives the status payload; `handlers` answer commands; `obeyed` lists the
        topic filters the device reads (sensor input), where no reply may ever be sent."""
        self.config = config
        self.broker = broker
        self.topics = Topics(broker.topic_prefix, device)
        self.device = device
        self.counters: Counter[str] = Counter()
        self.limiter = limiter or RateLimiter(60.0)
        self.boundary = Boundary(log, self.limiter, self.counters)
        path = check_spool_dir(config, broker, device)
        key = broker_key(config, broker)
        if adopt_legacy(path.parent / f"{device}.sqlite3", path):
            log.warning("spool from an earlier version adopted", extra={"path": str(path)})
        self.spool = Spool(
            path,
            max_bytes=int(config.spool_max_mb * 1024 * 1024),
            max_age_s=config.spool_max_age_h * 3600.0,
            full_policy=config.full_policy,
            fsync=config.fsync,
            identity={"device": device, "broker": key},
            memory_max_bytes=int(config.memory_max_mb * 1024 * 1024),
        )
        others = _other_backlogs(path, device)
        log.info(
            "spool opened",
            extra={
                "path": str(path),
                "broker": key,
                "backlog": self.spool.count,
                **({"kept_for_other_brokers": others} if others else {}),
            },
        )
        self.router = CommandRouter(
            self.topics,
            handlers or {},
            [*self.topics.reserved(), *obeyed, f"{config.homeassistant_prefix}/#"],
            config.response_topic_allow,
            self.limiter,
        )
        self._birth = birth
        self._result_topics: dict[str, str] = {}  # model id -> its result topic
        # Lock discipline: paho calls on_publish while holding its own message lock, so none of
        # our locks is ever held while calling into paho. `_cond` is only for waiting;
        # `_ack_lock` guards the in-flight bookkeeping and the cursors.
        self._cond = threading.Condition()
        self._sending = threading.Lock()  # one thread at a time runs _send_batch
        self._ack_lock = threading.Lock()
        self._inflight: dict[int, tuple[int, float]] = {}  # paho mid -> (spool id, put time)
        self.publish_ack_ms = Histogram()  # spool put -> PUBACK, written under _ack_lock
        self._early: set[int] = set()  # PUBACKs that arrived before publish() returned the mid
        self._untracked: set[int] = set()  # mids of messages that are not in the spool
        self._refusals: set[str] = set()
        # Send in batches of at least an eighth of the window: fewer wake-ups, and room for
        # live and backlog messages to share each batch.
        self._min_batch = max(1, config.inflight // 8)
        self._acked: list[int] = []
        self._connected = False
        self._boundary = 0  # last spool id when this connection began: older ones are backlog
        self._live_cursor = self._backlog_cursor = 0
        self._stopping = False
        self._news = True  # something may be sendable: set by flush, acks and connects
        self._last_progress = time.monotonic()  # last ack, or when the window became non-empty
        self._generation = 0
        self.recovery = Recovery()
        self.first_attempt = threading.Event()  # set once the broker has answered or failed
        self._health_backlog: deque[bytes] = deque(maxlen=HEALTH_BACKLOG)
        self._next_commit = 0.0
        self._urgent_waiting = False
        self.connected_event = threading.Event()
        self._start_client()
        self._sender = self._start_sender()

    # ---- client lifecycle ------------------------------------------------------------------
    def _start_client(self) -> AgentClient:
        """A new paho client, current before it connects (its callbacks publish through
        `self._client`), whose callbacks ignore themselves once it has been replaced."""
        self._generation += 1
        generation = self._generation
        client = make_client(self.broker, f"edge-agent-{self.device}")
        offline = orjson.dumps({"state": "offline", "device": self.device})
        client.will_set(self.topics.status, offline, qos=1, retain=True)
        # The sender never has more than `inflight` spooled messages at paho (it publishes only
        # into the free room), so paho's own limit is off: with one set, paho scans every
        # outgoing message on every PUBACK looking for queued ones, O(window) per message.
        client.max_inflight_messages_set(0)

        def current() -> bool:
            return generation == self._generation

        wrap = self.boundary.wrap
        client.on_connect = wrap("on_connect", self._on_connect, current)
        client.on_disconnect = wrap("on_disconnect", self._on_disconnect, current)
        client.on_publish = wrap("on_publish", self._on_publish, current)
        client.on_message = wrap("on_message", self._on_message, current)
        report = watch_connection(client, log, "publisher")

        def connect_failed(*_args: Any) -> None:
            if current():
                self._attempt_failed()
            report()

        client.on_connect_fail = wrap("on_connect_fail", connect_failed)
        self._report_failure = report
        connect_async(client, self.broker)
        self._client = client
        client.loop_start()
        return client

    def _start_sender(self) -> threading.Thread:
        sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        sender.start()
        return sender

    def _replace_client(self, why: str) -> None:
        old = self._client
        with self._ack_lock:
            self._inflight.clear()
            self._early.clear()
            self._untracked.clear()
        with self._cond:
            self._connected = False
        self.connected_event.clear()
        self._start_client()  # new generation: the old one's callbacks go quiet
        discard(old)
        self.counters["recoveries"] += 1
        self.recovery.started()
        log.warning("publisher recovered: new broker connection", extra={"cause": why})

    def _stalled_for(self) -> float | None:
        """Seconds without an acknowledgement while connected with messages in flight, once
        that exceeds `stall_timeout_s`; None otherwise."""
        with self._ack_lock:
            waiting = bool(self._inflight)
        silent = time.monotonic() - self._last_progress
        if self._connected and waiting and silent > self.config.stall_timeout_s:
            return silent
        return None

    def supervise(self) -> list[str]:
        """Check the threads and delivery progress, recover what stopped; return what is wrong
        now (empty when results can flow)."""
        problems = []
        if self._stopping:
            return problems
        if not self._sender.is_alive():
            self.counters["recoveries"] += 1
            self.recovery.started()
            log.warning("publisher recovered: sender thread restarted")
            self._sender = self._start_sender()
            problems.append("mqtt sender thread died; restarted")
        with self._ack_lock:
            waiting = len(self._inflight)
        stalled_for = self._stalled_for()
        if not network_alive(self._client):
            self._replace_client("network thread ended")
            problems.append("mqtt network thread ended; reconnecting")
        elif stalled_for is not None:
            self._replace_client(
                f"{waiting} messages unacknowledged for {stalled_for:.0f} s while connected"
            )
            problems.append(f"delivery stalled for {stalled_for:.0f} s; reconnecting")
        if self._connected and not waiting and self._sender.is_alive():
            self.recovery.confirmed()  # connected with nothing outstanding: it worked
        self.spool.check()
        if self.spool.fault is not None:
            problems.append(
                f"spool: {self.spool.fault}; holding {self.spool.overflow_count} in memory"
            )
        return problems

    # ---- Sink interface (agent thread) ---------------------------------------------------
    def emit(self, event: Event) -> None:
        if isinstance(event, Result):
            self.emit_many([event])
            return
        # A change of state: retained, urgent, and an event beside it.
        payload = _stored(event)
        state, change = self._state_topics(event)
        self._urgent_waiting = True
        self.spool.put(state, payload, 1, True, PRIORITY_ALARM)
        if change is not None:
            self.spool.put(change, payload, 1, False, PRIORITY_ALARM)

    def emit_many(self, events: Sequence[Event]) -> None:
        """A block's events in order; runs of results are spooled together."""
        results: list[tuple[str, bytes]] = []
        topics = self._result_topics
        for event in events:
            if isinstance(event, Result):
                model = event.model.id
                topic = topics.get(model) or topics.setdefault(model, self.topics.result(model))
                results.append((topic, _stored(event)))
                self.spool.set_sequence(model, event.seq)
                continue
            if results:
                self.spool.put_many(results, 1, PRIORITY_ROUTINE)
                results = []
            self.emit(event)
        if results:
            self.spool.put_many(results, 1, PRIORITY_ROUTINE)

    def _state_topics(self, event: Event) -> tuple[str, str | None]:
        """The retained state topic of an alarm, input health or deployment step, and its event
        topic (none for the input health snapshot a model publishes when its checks start)."""
        topics = self.topics
        if isinstance(event, AlarmEvent):
            return topics.alarm(event.model.id), topics.alarm_event(event.model.id)
        if isinstance(event, DeploymentEvent):
            return topics.deployment(event.model_id), topics.deployment_event(event.model_id)
        assert isinstance(event, InputHealthEvent)
        model = event.model.id
        change = None if event.change is None else topics.input_health_event(model)
        return topics.input_health(model), change

    def flush(self) -> None:
        """Commit (and offer to the broker) what was emitted: every batch, or at most every
        `commit_interval_s` unless an alarm or input health change is waiting."""
        now = time.monotonic()
        if self._urgent_waiting or now >= self._next_commit:
            self._urgent_waiting = False
            self._next_commit = now + self.config.commit_interval_s
            self.spool.commit()
            if not self._send_here():
                self._notify()

    def _send_here(self) -> bool:
        """Offer what was just committed from this (the agent's) thread when the sender is idle:
        one thread hand-off less between a result and the broker. Live messages only: a
        backlog stays the sender's. False leaves the rest to the sender (busy, no connection,
        a backlog or anything else left unsent)."""
        if not self._connected or not self._sending.acquire(blocking=False):
            return False
        try:
            self._send_batch(live_only=True)
            self._delete_acked()
        except Exception:  # the sender retries it; counted and logged as the sender's own
            self._sender_fault()
            return False
        finally:
            self._sending.release()
        return not self._unsent()

    @property
    def metrics_interval_s(self) -> float:
        return self.config.metrics_interval_s

    def publish_metrics(self, metrics: dict[str, Any]) -> None:
        """Periodic health (QoS 0): published if connected, else spooled or counted as dropped."""
        payload = orjson.dumps({"device": self.device, "ts": time.time(), **metrics})
        if self._connected:
            self._publish_untracked(self.topics.metrics, payload, qos=0)
        elif self.config.qos0_offline == "spool":
            self.spool.put(self.topics.metrics, payload, 0, False, PRIORITY_ROUTINE)
            self.flush()
        else:
            self.counters["metrics_dropped_offline"] += 1

    def publish_status(self, models_changed: bool = False) -> None:
        """Re-publish the retained status now (the agent's health changed); after a reload
        that changed the models, Home Assistant discovery too."""
        if self._connected:
            self._publish_untracked(
                self.topics.status, orjson.dumps(self._birth()), qos=1, retain=True
            )
            if models_changed and self.config.homeassistant:
                self._announce_to_homeassistant()

    def publish_health_event(self, event: dict[str, Any]) -> None:
        """A health transition: sent at once when connected, else kept in memory (the last
        HEALTH_BACKLOG) for the next connect. Not spooled: a full disk must not delay it."""
        payload = orjson.dumps({"device": self.device, **event})
        if self._connected:
            self._publish_untracked(self.topics.health_event, payload, qos=1)
        else:
            if len(self._health_backlog) == self._health_backlog.maxlen:
                self.counters["health_events_dropped"] += 1
            self._health_backlog.append(payload)

    def stuck_for(self) -> float:
        return self.recovery.stuck_for()

    def sequence(self, model: str) -> int:
        return self.spool.sequence(model)

    def stats(self) -> dict[str, Any]:
        with self._ack_lock:
            inflight = len(self._inflight)
        oldest = self.spool.oldest_put()
        connects = self.counters["connects"]
        connection, storage = self.counters["recoveries"], self.spool.counters["recoveries"]
        return {
            "connected": self._connected,
            "delivery": "ok" if self._stalled_for() is None else "stalled",
            "spool_messages": self.spool.live_count,
            "spool_oldest_age_s": 0.0 if oldest is None else round(self._age_s(oldest), 3),
            "spool_disk_bytes": self.spool.disk_bytes(),
            "spool_fault": self.spool.fault,
            "memory_held": self.spool.overflow_count,
            "inflight": inflight,
            **self.spool.counters,
            **self.router.counters,
            **self.counters,
            "reconnects": max(0, connects - 1),
            # The spool and the connection each count their own recoveries; both are recoveries.
            "recoveries": connection + storage,
            "connection_recoveries": connection,
            "spool_recoveries": storage,
        }

    def _age_s(self, put: float) -> float:
        """Seconds since a spool put (the spool's steady clock; 0 for a clock stepped back
        between a put in an earlier run and now)."""
        return max(0.0, self.spool.clock.steady() - put)

    def undelivered(self) -> int:
        return self.spool.live_count + self.spool.overflow_count - len(self._acked)

    def close(self, timeout: float = 5.0) -> None:
        """Graceful stop: while connected, wait up to `timeout` for every spooled message to be
        acknowledged; publish offline; disconnect; say how many remain for the next start."""
        self._next_commit = 0.0
        self.flush()
        deadline = time.monotonic() + timeout
        with self._cond:
            while (
                self._connected
                and (self._inflight or self._unsent())
                and (time.monotonic() < deadline)
            ):
                self._cond.wait(0.05)
            self._stopping = True
            self._cond.notify_all()
        self._sender.join(timeout=max(0.1, deadline - time.monotonic()))
        if self._connected:
            offline = orjson.dumps({"state": "offline", "device": self.device})
            self._publish_untracked(
                self.topics.status, offline, qos=1, retain=True
            ).wait_for_publish(max(0.1, deadline - time.monotonic()))
        stop_network(self._client, max(0.5, deadline - time.monotonic()))
        self._delete_acked()
        remaining = self.undelivered()
        self.spool.close()
        log.info(
            "publisher stopped",
            extra={"undelivered": remaining, "spool": str(self.spool.path)},
        )

    # ---- paho callbacks (network thread, behind the boundary) --------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.first_attempt.set()
            self.counters["connect_refused"] += 1
            self.recovery.confirmed()
            log.warning("broker refused connection", extra={"reason": str(reason)})
            return
        # Subscribed before the birth: the broker handles one client's packets in order, so
        # whoever sees "online" can send a command at once and it is not lost.
        client.subscribe(self.topics.commands, qos=1)
        self._publish_untracked(self.topics.status, orjson.dumps(self._birth()), qos=1, retain=True)
        while self._health_backlog:
            self._publish_untracked(self.topics.health_event, self._health_backlog.popleft(), 1)
        if self.config.homeassistant:
            self._announce_to_homeassistant()
            client.subscribe(f"{self.config.homeassistant_prefix}/status", qos=1)
        boundary = self.spool.last_id()
        with self._cond:
            self._connected = True
            with self._ack_lock:
                self._boundary = boundary
                self._backlog_cursor, self._live_cursor = 0, boundary
            self._last_progress = time.monotonic()
            self._news = True
            self._cond.notify_all()
        self.counters["connects"] += 1
        self._report_failure.connected()
        self.connected_event.set()
        self.first_attempt.set()  # after _connected: READY's STATUS= line says "connected"
        log.info("connected to broker", extra={"backlog_up_to": boundary})

    def _attempt_failed(self) -> None:
        """A connection attempt ended clearly (refused, unreachable): an outage, not a wedge."""
        self.first_attempt.set()
        self.recovery.confirmed()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._attempt_failed()
        with self._cond:
            was_connected, self._connected = self._connected, False
        self.connected_event.clear()
        if self._stopping:
            return
        if not was_connected:  # dropped before CONNACK: a refused handshake, not an outage
            self._report_failure()
            return
        self.counters["disconnects"] += 1
        log.warning("disconnected from broker; spooling", extra={"reason": str(reason)})

    def _publish_untracked(
        self, topic: str, payload: bytes, qos: int, retain: bool = False, properties: Any = None
    ) -> mqtt.MQTTMessageInfo:
        """Publish something that is not in the spool (status, replies, metrics, discovery), so
        that its acknowledgement is never mistaken for a spooled message's."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        with self._ack_lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._untracked.add(info.mid)
        return info

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if reason is not None and reason.is_failure:
            # Refused by the broker (e.g. an ACL): retrying cannot help, so it is counted, logged
            # once per reason, and removed like an acknowledged message.
            self.counters["rejected_by_broker"] += 1
            if reason.getName() not in self._refusals:
                self._refusals.add(reason.getName())
                log.warning("broker rejected a message", extra={"reason": reason.getName()})
        with self._ack_lock:
            if mid in self._untracked:  # incl. QoS 0 metrics, "acknowledged" when merely sent
                self._untracked.discard(mid)
                return
            self._last_progress = time.monotonic()
            self.recovery.confirmed()
            sent = self._inflight.pop(mid, None)
            if sent is None:
                self._early.add(mid)
                return
            self._acked.append(sent[0])
            self.publish_ack_ms.observe(self._age_s(sent[1]) * 1000.0)
            room = self.config.inflight - len(self._inflight)
        # Acks come one at a time: wake the sender once when they free the room it waits for,
        # and when the last one empties the window, so acknowledged rows are handed to the
        # spool (deleted, never re-sent as backlog) without waiting for the next result.
        if room == self._min_batch or room == self.config.inflight:
            self._notify()

    def _announce_to_homeassistant(self) -> None:
        topic, payload = discovery(self.config.homeassistant_prefix, self.topics, self._birth())
        self._publish_untracked(topic, orjson.dumps(payload), qos=1, retain=True)
        self.counters["homeassistant_discovery"] += 1

    def _on_message(self, _client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == f"{self.config.homeassistant_prefix}/status":
            if message.payload == b"online":  # Home Assistant restarted: announce again
                self._announce_to_homeassistant()
            return
        answer = self.router.handle(
            message.topic, message.payload, getattr(message, "properties", None)
        )
        if answer is None:
            return
        if isinstance(answer.reply, Future):
            answer.reply.add_done_callback(
                self.boundary.wrap("command_reply", lambda _f: self._reply(message.topic, answer))
            )
        else:
            self._reply(message.topic, answer)

    def _reply(self, command_topic: str, answer: Answer) -> None:
        reply = answer.reply.result() if isinstance(answer.reply, Future) else answer.reply
        properties = None
        if answer.correlation is not None:
            properties = mqtt.Properties(mqtt.PacketTypes.PUBLISH)
            properties.CorrelationData = answer.correlation
        self._publish_untracked(
            answer.topic, encode_reply(command_topic, reply), qos=1, properties=properties
        )

    # ---- sender thread -------------------------------------------------------------------
    def _unsent(self) -> bool:
        return self.spool.live_count > len(self._inflight) + len(self._acked)

    def _delete_acked(self) -> None:
        """Hand acknowledged ids to the spool: never offered again from now on, their rows
        deleted with the next commit (the agent commits every batch, and at least once per
        supervisor tick). One write transaction per batch instead of two, and none on the
        sender's way to the broker; the price is that a crash may re-send the acknowledged
        results of the last second, which subscribers drop by (device, model, seq)."""
        with self._ack_lock:
            acked, self._acked = self._acked, []
        self.spool.delete(acked, at_once=False)

    def _send_loop(self) -> None:
        """Wake on news (new messages, acknowledgements, a connect), never by polling, so a
        result is offered to the broker as soon as its batch is committed."""
        while True:
            with self._cond:
                while not self._stopping and not (
                    self._connected
                    and self._news
                    and len(self._inflight) <= self.config.inflight - self._min_batch
                ):
                    self._cond.wait(1.0)
                if self._stopping:
                    return
                self._news = False
            try:
                with self._sending:  # the agent's thread may send too (_send_here)
                    more = self._send_batch()
                    self._delete_acked()
            except Exception:  # counted and logged; the supervisor sees the sender alive
                self._sender_fault()
                with self._cond:
                    self._cond.wait(1.0)
                more = True
            if more:
                with self._cond:  # there may be more: look again without waiting
                    self._news = True

    def _sender_fault(self) -> None:
        """Count and log (rate-limited, with the trace) an unexpected error while sending."""
        self.counters["faults:sender"] += 1
        if self.limiter.allow("fault:sender"):
            log.exception("sender error; retrying", extra={"where": "mqtt sender"})

    def _notify(self) -> None:
        with self._cond:
            self._news = True
            self._cond.notify_all()

    def _send_batch(self, live_only: bool = False) -> int:
        """Publish up to the free in-flight room: live and backlog share it when both wait."""
        with self._ack_lock:
            room = self.config.inflight - len(self._inflight)
            live_after, backlog_after = self._live_cursor, self._backlog_cursor
            boundary = self._boundary
            inflight_ids = {spool_id for spool_id, _ in self._inflight.values()}
        if room <= 0:
            return 0
        live = self.spool.fetch(live_after, room)
        backlog = [] if live_only else self.spool.fetch(backlog_after, room, boundary)
        if live and backlog:
            live = live[: max(1, room // 2)]
            backlog = backlog[: room - len(live)]
        client = self._client
        live_stamp, backlog_stamp = _stamps(time.time())
        published: list[tuple[int, SpooledMessage]] = []  # (paho mid, row)
        live_cursor = backlog_cursor = 0
        for row in live + backlog:
            if boundary != self._boundary:
                break  # a reconnect reset the cursors meanwhile
            historical = row.id <= boundary
            if row.id not in inflight_ids:  # else paho is already re-sending it
                if not self._connected or client is not self._client:
                    break
                payload = _stamp(row.payload, backlog_stamp if historical else live_stamp)
                info = client.publish(row.topic, payload, qos=row.qos, retain=row.retain)
                published.append((info.mid, row))
            if historical:
                backlog_cursor = row.id
            else:
                live_cursor = row.id
        with self._ack_lock:  # once per batch; a PUBACK faster than this waits in _early
            if client is not self._client:
                return 0  # replaced meanwhile: the new connection sends these rows again
            if published and not self._inflight:
                self._last_progress = time.monotonic()
            for mid, row in published:
                if row.qos == 0 or mid in self._early:
                    self._early.discard(mid)
                    self._acked.append(row.id)
                    if row.qos:  # acknowledged before it was recorded
                        self.publish_ack_ms.observe(self._age_s(row.created) * 1000.0)
                else:
                    self._inflight[mid] = (row.id, row.created)
            if boundary == self._boundary:
                self._backlog_cursor = max(self._backlog_cursor, backlog_cursor)
                self._live_cursor = max(self._live_cursor, live_cursor)
        return len(published)


def _stored(event: Event) -> bytes:
    """An event as spooled: without the two fields known only when a copy is sent (_stamp)."""
    message = event.payload(None)
    del message["published_at"], message["historical"]
    return orjson.dumps(message)


def _stamps(published_at: float) -> tuple[bytes, bytes]:
    """What `_stamp` appends to a live and to a backlog message published now."""
    fields = b',"published_at":' + repr(published_at).encode() + b',"historical":'
    return fields + b"false}", fields + b"true}"


def _stamp(payload: bytes, fields: bytes) -> bytes:
    """Append published_at and historical (`_stamps`) to a stored JSON object without
    re-parsing it."""
    if not payload.endswith(b"}") or payload == b"{}":
        return payload
    return payload[:-1] + fields
