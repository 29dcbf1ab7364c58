"""The MQTT publisher: a sink that spools every event durably, then offers it to the broker.

One sender thread owns publishing. After each (re)connect it publishes the retained birth
message, then sends live messages first and the backlog (everything spooled before the
connect, marked `historical`) in order beside them, so a long backlog never starves live
results. paho re-sends its own unacknowledged messages after a reconnect; the spool covers
everything else, including a crash of the agent. Reconnects are paho's own (capped
exponential backoff); there is no second reconnect loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from edge_agent.config.mqtt import MqttConfig
from edge_agent.config.sinks import MqttSinkConfig
from edge_agent.events import AlarmEvent, Event, Result
from edge_agent.mqtt.client import connect_async, make_client, watch_connection
from edge_agent.mqtt.homeassistant import discovery
from edge_agent.mqtt.spool import PRIORITY_ALARM, PRIORITY_ROUTINE, Spool
from edge_agent.mqtt.topics import Topics

log = logging.getLogger("edge_agent.mqtt")
Command = Callable[[str, dict[str, Any]], dict[str, Any]]


class MqttPublisher:
    def __init__(
        self,
        config: MqttSinkConfig,
        broker: MqttConfig,
        device: str,
        birth: Callable[[], dict[str, Any]],
        on_command: Command | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(broker.topic_prefix, device)
        self.device = device
        self.spool = Spool(
            config.spool_dir / f"{device}.sqlite3",
            max_bytes=int(config.spool_max_mb * 1024 * 1024),
            max_age_s=config.spool_max_age_h * 3600.0,
            full_policy=config.full_policy,
            fsync=config.fsync,
        )
        self.counters: Counter[str] = Counter()
        self._birth = birth
        self._on_command = on_command
        # Lock discipline: paho calls on_publish while holding its own message lock, so none of
        # our locks is ever held while calling into paho. `_cond` is only for waiting;
        # `_ack_lock` guards the in-flight bookkeeping.
        self._cond = threading.Condition()
        self._ack_lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # paho mid -> spool id
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
        self.connected_event = threading.Event()

        client = make_client(broker, f"edge-agent-{device}")
        offline = orjson.dumps({"state": "offline", "device": device})
        client.will_set(self.topics.status, offline, qos=1, retain=True)
        client.max_inflight_messages_set(config.inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._report_failure = watch_connection(client, log, "publisher")
        self._client = client
        connect_async(client, broker)
        client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()

    # ---- Sink interface (agent thread) ---------------------------------------------------
    def emit(self, event: Event) -> None:
        # Stored without the two fields known only when a copy is sent; _stamp() appends them.
        message = event.payload(None)
        del message["published_at"], message["historical"]
        payload = orjson.dumps(message)
        if isinstance(event, Result):
            self.spool.put(self.topics.result(event.model.id), payload, 1, False, PRIORITY_ROUTINE)
            self.spool.set_sequence(event.model.id, event.seq)
        elif isinstance(event, AlarmEvent):
            self.spool.put(self.topics.alarm(event.model.id), payload, 1, True, PRIORITY_ALARM)
            self.spool.put(
                self.topics.alarm_event(event.model.id), payload, 1, False, PRIORITY_ALARM
            )

    def flush(self) -> None:
        self.spool.commit()
        self._notify()

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

    def sequence(self, model: str) -> int:
        return self.spool.sequence(model)

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self._connected,
            "spool_messages": self.spool.count,
            "spool_bytes": self.spool.bytes,
            "inflight": len(self._inflight),
            **self.spool.counters,
            **self.counters,
        }

    def close(self, timeout: float = 5.0) -> None:
        """Graceful stop: wait (bounded) for acknowledgements, publish offline, disconnect."""
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
        self._client.disconnect()
        self._client.loop_stop()
        self._delete_acked()
        self.spool.close()

    # ---- paho callbacks (network thread) -----------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.counters["connect_refused"] += 1
            log.warning("broker refused connection", extra={"reason": str(reason)})
            return
        self._publish_untracked(self.topics.status, orjson.dumps(self._birth()), qos=1, retain=True)
        client.subscribe(self.topics.commands, qos=1)
        if self.config.homeassistant:
            self._announce_to_homeassistant()
            client.subscribe(f"{self.config.homeassistant_prefix}/status", qos=1)
        with self._cond:
            self._connected = True
            self._boundary = self.spool.last_id()
            self._backlog_cursor, self._live_cursor = 0, self._boundary
            self._news = True
            self._cond.notify_all()
        self.counters["connects"] += 1
        self.connected_event.set()
        log.info("connected to broker", extra={"backlog_up_to": self._boundary})

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
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
        """Publish something that is not in the spool (birth, replies, metrics, discovery), so
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
            if self.counters["rejected_by_broker"] == 1 or reason.getName() not in self._refusals:
                self._refusals.add(reason.getName())
                log.warning("broker rejected a message", extra={"reason": reason.getName()})
        with self._ack_lock:
            if mid in self._untracked:
                self._untracked.discard(mid)
                return
            spool_id = self._inflight.pop(mid, None)
            if spool_id is None:
                self._early.add(mid)
            else:
                self._acked.append(spool_id)
        self._notify()

    def _announce_to_homeassistant(self) -> None:
        topic, payload = discovery(self.config.homeassistant_prefix, self.topics, self._birth())
        self._publish_untracked(topic, orjson.dumps(payload), qos=1, retain=True)
        self.counters["homeassistant_discovery"] += 1

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == f"{self.config.homeassistant_prefix}/status":
            if message.payload == b"online":  # Home Assistant restarted: announce again
                self._announce_to_homeassistant()
            return
        verb = message.topic.rsplit("/", 1)[-1]
        try:
            request = orjson.loads(message.payload) if message.payload else {}
            if not isinstance(request, dict):
                raise ValueError("command payload must be a JSON object")
            reply = self._on_command(verb, request) if self._on_command else {"ok": False}
        except (ValueError, orjson.JSONDecodeError) as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # an exception here would end paho's network thread
            log.exception("command failed", extra={"command": verb})
            reply = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
        self.counters[f"command:{verb}"] += 1
        properties = getattr(message, "properties", None)
        target = getattr(properties, "ResponseTopic", None) or self.topics.reply(verb)
        response = mqtt.Properties(mqtt.PacketTypes.PUBLISH)
        correlation = getattr(properties, "CorrelationData", None)
        if correlation is not None:
            response.CorrelationData = correlation
        self._publish_untracked(
            target,
            orjson.dumps({"command": verb, **reply}),
            qos=1,
            properties=response if correlation is not None else None,
        )

    # ---- sender thread -------------------------------------------------------------------
    def _unsent(self) -> bool:
        return self.spool.count > len(self._inflight) + len(self._acked)

    def _delete_acked(self) -> None:
        with self._ack_lock:
            acked, self._acked = self._acked, []
        self.spool.delete(acked)

    def _send_loop(self) -> None:
        """Wake on news (new messages, acknowledgements, a connect), never by polling, so a
        result is offered to the broker as soon as its block is committed."""
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
            self._delete_acked()
            if self._send_batch():
                with self._cond:  # there may be more: look again without waiting
                    self._news = True

    def _notify(self) -> None:
        with self._cond:
            self._news = True
            self._cond.notify_all()

    def _send_batch(self) -> int:
        """Publish up to the free in-flight room: live and backlog share it when both wait."""
        room = self.config.inflight - len(self._inflight)
        if room <= 0:
            return 0
        live = self.spool.fetch(self._live_cursor, room)
        backlog = self.spool.fetch(self._backlog_cursor, room, self._boundary)
        if live and backlog:
            live = live[: max(1, room // 2)]
            backlog = backlog[: room - len(live)]
        with self._ack_lock:
            inflight_ids = set(self._inflight.values())
        now, sent = time.time(), 0
        for row in live + backlog:
            if row.id not in inflight_ids:  # else paho is already re-sending it
                if not self._connected:
                    return sent
                info = self._client.publish(
                    row.topic,
                    _stamp(row.payload, now, row.id <= self._boundary),
                    qos=row.qos,
                    retain=row.retain,
                )
                with self._ack_lock:
                    if row.qos == 0 or info.mid in self._early:
                        self._early.discard(info.mid)
                        self._acked.append(row.id)
                    else:
                        self._inflight[info.mid] = row.id
                sent += 1
            if row.id <= self._boundary:
                self._backlog_cursor = max(self._backlog_cursor, row.id)
            else:
                self._live_cursor = max(self._live_cursor, row.id)
        return sent


def _stamp(payload: bytes, published_at: float, historical: bool) -> bytes:
    """Append published_at and historical to a stored JSON object without re-parsing it."""
    if not payload.endswith(b"}") or payload == b"{}":
        return payload
    flag = b"true" if historical else b"false"
    return (
        payload[:-1]
        + b',"published_at":'
        + repr(published_at).encode()
        + (b',"historical":' + flag + b"}")
    )
