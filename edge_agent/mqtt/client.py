"""Building a paho-mqtt 2.x client from `[mqtt]`: protocol, TLS (verification on), credentials,
and paho's own reconnect backoff. No second reconnect loop exists anywhere in the agent."""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config.mqtt import MqttConfig
from edge_agent.errors import ConfigError


class AgentClient(mqtt.Client):
    """paho's client, remembering why the last connection attempt failed (TLS, refused, DNS),
    which paho's on_connect_fail callback does not say."""

    last_error: str = ""

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise


class FailureReporter:
    """Logs why connection attempts fail, once per distinct reason until the next successful
    connect, so a long outage or a refused certificate does not flood the log (a TLS 1.3
    refusal alternates between two reasons from one attempt to the next)."""

    def __init__(self, client: AgentClient, log: logging.Logger, what: str) -> None:
        self.client, self.log, self.what = client, log, what
        self._seen: set[str] = set()

    def __call__(self) -> None:
        reason = self.client.last_error
        if reason in self._seen:
            return
        self._seen.add(reason)
        self.log.warning(
            f"{self.what}: cannot connect to broker; retrying with backoff",
            extra={"error": reason or "connection closed during handshake"},
        )

    def connected(self) -> None:
        self._seen.clear()


def watch_connection(client: AgentClient, log: logging.Logger, what: str) -> FailureReporter:
    """Report failed connection attempts (see FailureReporter). Callers also call it when they
    see a failure themselves (a TLS 1.3 refusal shows up as a disconnect before CONNACK)."""
    report = FailureReporter(client, log, what)
    client.on_connect_fail = lambda _client, _userdata: report()
    client.enable_logger(_error_catcher(client))
    return report


class _LastError(logging.Handler):
    def __init__(self, client: AgentClient) -> None:
        super().__init__(logging.ERROR)
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        self.client.last_error = record.getMessage()


def _error_catcher(client: AgentClient) -> logging.Logger:
    """A private logger for paho that keeps only errors (paho skips formatting anything else,
    unlike an on_log callback, which costs a formatted string per packet)."""
    logger = logging.getLogger(f"edge_agent.paho.{id(client)}")
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    logger.handlers[:] = [_LastError(client)]
    return logger


def make_client(config: MqttConfig, client_id: str) -> AgentClient:
    protocol = mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311
    client = AgentClient(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=config.client_id or client_id,
        protocol=protocol,
        clean_session=None if protocol == mqtt.MQTTv5 else config.clean_start,
    )
    client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
    if config.username is not None and config.password is not None:
        try:
            client.username_pw_set(config.username, config.password.reveal())
        except ValueError as exc:
            raise ConfigError(f"mqtt.password: {exc}") from None
    if config.tls is not None:
        tls = config.tls
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        context.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
        )
        context.check_hostname = tls.verify_hostname
        if tls.cert_file is not None and tls.key_file is not None:
            try:
                context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"mqtt.tls: cannot load client certificate: {exc}") from None
        client.tls_set_context(context)
    return client


def connect_async(client: mqtt.Client, config: MqttConfig) -> None:
    """Start connecting with the configured session semantics; paho's loop does the rest."""
    if config.protocol == "5":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = config.session_expiry_s
        client.connect_async(
            config.host,
            config.port,
            config.keepalive_s,
            clean_start=config.clean_start,
            properties=properties,
        )
    else:
        client.connect_async(config.host, config.port, config.keepalive_s)


def _network_thread(client: mqtt.Client) -> threading.Thread | None:
    """The thread started by `loop_start()`. paho 2.x keeps it in `_thread` and clears it when
    `loop_forever` ends (an exception raised by a callback ends it); paho offers no public
    accessor, so this one function depends on that detail."""
    return getattr(client, "_thread", None)


def network_alive(client: mqtt.Client) -> bool:
    thread = _network_thread(client)
    return thread is not None and thread.is_alive()


def stop_network(client: mqtt.Client, timeout: float) -> None:
    """Disconnect and wait at most `timeout` for the network thread (paho's `loop_stop` waits
    for ever, and a thread stuck on a frozen broker must not hold up a shutdown)."""
    with contextlib.suppress(Exception):
        client.disconnect()
    thread = _network_thread(client)
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)


def discard(client: mqtt.Client) -> None:
    """Let a replaced client go: ask its loop to end, never join it (it may be wedged in a
    callback), and ignore what a broken client says."""
    with contextlib.suppress(Exception):
        client.disconnect()
