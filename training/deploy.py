"""`edge-train deploy`: roll a model update out to a fleet over MQTT v5.

The update command goes to a canary group first; each device's update is followed on its
`<prefix>/<device>/<model>/deployment/event` topic until it ends: `promoted` is a success,
`refused`, `rolled_back`, `awaiting_approval` or no end within the timeout a failure. Only when
every canary promoted do the other devices get the command (all at once, or in batches), and no
further batch starts after a failure. Only standard MQTT v5 is used (QoS 1, retained status
messages for discovery, correlation data matching command replies, a broker-side session that
outlives a dropped connection), so a clustered broker serves exactly as a single one does.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from edge_agent.config.base import Secret
from edge_agent.config.mqtt import MqttConfig, TlsConfig
from edge_agent.errors import ConfigError
from edge_agent.mqtt.client import make_client, stop_network
from edge_agent.mqtt.contract import DeploymentPayload, StatusPayload
from edge_agent.schema import ID_RE

TERMINAL = ("promoted", "rolled_back", "refused", "awaiting_approval")
STATE_WIDTH = len("awaiting_approval")
CONNECT_TIMEOUT_S = 10.0
SUBSCRIBE_TIMEOUT_S = 10.0
# A command reply can overtake the deployment events it follows (they go through the device's
# spool); they are waited for this long before the reply alone decides. A refusal with no step
# seen is most likely a command turned down before any step (unknown model id, an update
# already in progress), which publishes none: a shorter wait.
REPLY_GRACE_S = 5.0
REFUSAL_GRACE_S = 1.0
# The broker keeps this client's subscriptions and queues its QoS 1 messages for this long after
# a dropped connection, so no step is missed across a reconnect; ended at a clean exit.
SESSION_EXPIRY_S = 600


@dataclass
class DeployRequest:
    broker: str
    source: str
    model: str | None = None
    devices: list[str] | None = None
    discover: str | None = None
    canary: int = 1
    batch: int | None = None
    timeout_s: float = 300.0
    prefix: str | None = None
    bundle: Path | None = None
    public_keys: list[Path] = field(default_factory=list)
    username: str | None = None
    password_file: Path | None = None
    tls_ca: Path | None = None
    discover_wait_s: float = 3.0


@dataclass
class Outcome:
    state: str  # a terminal deployment state, or "timeout" / "not_sent"
    version: str | None
    running: str | None
    reason: str


@dataclass
class Target:
    device: str
    expected: str | None  # the version this rollout installs, once known
    correlation: bytes = field(default_factory=lambda: secrets.token_bytes(8))
    known_running: str | None = None  # from discovery, before anything is sent
    sent_at: float | None = None
    mid: int | None = None
    last: DeploymentPayload | None = None
    reply: dict[str, Any] | None = None
    reply_at: float | None = None
    outcome: Outcome | None = None


# ---- arguments --------------------------------------------------------------------------------
def _identifier(value: str, what: str) -> str:
    if not ID_RE.match(value):
        raise ConfigError(f"{what} {value!r} is not a valid id ([A-Za-z0-9][A-Za-z0-9_.-]*)")
    return value


def broker_config(request: DeployRequest, prefix: str) -> MqttConfig:
    """`mqtt://host[:port]` or `mqtts://host[:port]` (TLS, verified) as the agent's [mqtt]."""
    url = urlsplit(request.broker)
    try:
        port = url.port
    except ValueError:
        port = -1
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname or port == -1:
        raise ConfigError(
            f"--broker {request.broker!r}: expected mqtt://host[:port] or mqtts://host[:port]"
        )
    if url.username or url.password or url.path not in ("", "/") or url.query:
        raise ConfigError(
            f"--broker {request.broker!r}: give only scheme, host and port "
            "(credentials: --username and --password-file)"
        )
    tls = url.scheme == "mqtts"
    if request.tls_ca is not None and not tls:
        raise ConfigError("--tls-ca needs an mqtts:// broker")
    if (request.username is None) != (request.password_file is None):
        raise ConfigError("--username and --password-file go together")
    password = None
    if request.password_file is not None:
        password = Secret(file=request.password_file)
        try:
            password.reveal()
        except ValueError as exc:
            raise ConfigError(f"--password-file: {exc}") from None
    try:
        return MqttConfig(
            host=url.hostname,
            port=port or (8883 if tls else 1883),
            protocol="5",
            username=request.username,
            password=password,
            tls=TlsConfig(ca_file=request.tls_ca) if tls else None,
            topic_prefix=prefix,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise ConfigError(f"--broker: {problem['msg']}") from None


def _prefix_and_filter(request: DeployRequest) -> tuple[str, str | None]:
    """The topic prefix, and the device level of --discover (`+` or an id)."""
    if request.discover is None:
        return _identifier(request.prefix or "pdm", "--prefix"), None
    levels = request.discover.split("/")
    if len(levels) != 2 or not (levels[1] == "+" or ID_RE.match(levels[1])):
        raise ConfigError(
            f"--discover {request.discover!r}: expected <prefix>/+ (every device) "
            "or <prefix>/<device id>"
        )
    prefix = _identifier(levels[0], "--discover prefix")
    if request.prefix is not None and request.prefix != prefix:
        raise ConfigError(f"--discover {request.discover!r} is not under --prefix {request.prefix}")
    return prefix, levels[1]


def _check(request: DeployRequest) -> None:
    if request.canary < 0:
        raise ConfigError("--canary must be 0 or more")
    if request.batch is not None and request.batch < 1:
        raise ConfigError("--batch must be 1 or more")
    if request.timeout_s <= 0:
        raise ConfigError("--timeout must be above 0")
    if not request.source:
        raise ConfigError("--source must name a folder on the device or an https URL")
    if request.devices is not None:
        for device in request.devices:
            _identifier(device, "device id")
        if len(set(request.devices)) != len(request.devices):
            raise ConfigError("--devices lists a device twice")
        if not request.devices:
            raise ConfigError("--devices lists no device")


# ---- the MQTT session -------------------------------------------------------------------------
class Session:
    """One MQTT v5 connection. paho's callbacks only record what arrived; the rollout handles it
    on the caller's thread."""

    def __init__(self, config: MqttConfig, url: str) -> None:
        self.config, self.url = config, url
        self.client = make_client(config, f"edge-train-deploy-{secrets.token_hex(4)}")
        self.cond = threading.Condition()
        self.inbox: list[mqtt.MQTTMessage] = []
        self.connack: mqtt.ReasonCode | None = None
        self.subacks: dict[int, list[mqtt.ReasonCode]] = {}
        self.refused_publishes: dict[int, str] = {}
        self.filters: list[str] = []
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    def open(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            self.client.connect(
                self.config.host,
                self.config.port,
                self.config.keepalive_s,
                clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
            )
        except OSError as exc:
            raise ConfigError(f"cannot connect to {self.url}: {exc}") from None
        self.client.loop_start()
        with self.cond:
            self.cond.wait_for(lambda: self.connack is not None, CONNECT_TIMEOUT_S)
            connack = self.connack
        if connack is None:
            why = self.client.last_error or "no CONNACK"
            raise ConfigError(f"cannot connect to {self.url} within {CONNECT_TIMEOUT_S:g} s: {why}")
        if connack.is_failure:
            raise ConfigError(f"{self.url} refused the connection: {connack}")

    def close(self) -> None:
        """Disconnect and end the broker-side session at once (MQTT v5 allows lowering it)."""
        properties = Properties(PacketTypes.DISCONNECT)
        properties.SessionExpiryInterval = 0
        with contextlib.suppress(Exception):  # a broken connection has nothing left to end
            self.client.disconnect(properties=properties)
        stop_network(self.client, 5)

    def subscribe(self, filters: list[str]) -> None:
        """Subscribe at QoS 1 and wait for the SUBACKs; a refused filter is an error."""
        mids = []
        for start in range(0, len(filters), 50):
            chunk = filters[start : start + 50]
            _, mid = self.client.subscribe([(f, SubscribeOptions(qos=1)) for f in chunk])
            mids.append((mid, chunk))
        with self.cond:
            self.cond.wait_for(
                lambda: all(mid in self.subacks for mid, _ in mids), SUBSCRIBE_TIMEOUT_S
            )
            acks = {mid: self.subacks.get(mid) for mid, _ in mids}
        for mid, chunk in mids:
            codes = acks[mid]
            if codes is None:
                raise ConfigError(f"{self.url}: no SUBACK within {SUBSCRIBE_TIMEOUT_S:g} s")
            for topic, code in zip(chunk, codes):
                if code.is_failure:
                    raise ConfigError(f"{self.url} refused the subscription to {topic}: {code}")
        self.filters += filters

    def unsubscribe(self, filters: list[str]) -> None:
        self.client.unsubscribe(filters)
        self.filters = [f for f in self.filters if f not in filters]

    def publish(self, topic: str, body: dict[str, Any], correlation: bytes) -> int:
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = correlation
        info = self.client.publish(topic, json.dumps(body).encode(), qos=1, properties=properties)
        return info.mid

    def take(self, timeout: float) -> list[mqtt.MQTTMessage]:
        """The messages that arrived, waiting up to `timeout` for the first."""
        with self.cond:
            self.cond.wait_for(lambda: bool(self.inbox), max(timeout, 0))
            taken, self.inbox = self.inbox, []
        return taken

    # paho's network thread
    def _on_connect(self, client, _userdata, flags, reason, _properties) -> None:
        with self.cond:
            first = self.connack is None
            self.connack = reason
            self.cond.notify_all()
        if not first and not reason.is_failure and not flags.session_present and self.filters:
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.filters])

    def _on_subscribe(self, _client, _userdata, mid, reasons, _properties) -> None:
        with self.cond:
            self.subacks[mid] = list(reasons)
            self.cond.notify_all()

    def _on_publish(self, _client, _userdata, mid, reason, _properties) -> None:
        if reason.is_failure:
            with self.cond:
                self.refused_publishes[mid] = str(reason)
                self.cond.notify_all()

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.inbox.append(message)
            self.cond.notify_all()


# ---- output -----------------------------------------------------------------------------------
class Table:
    def __init__(self, out: TextIO, devices: list[str]) -> None:
        self.out = out
        self.width = max([len("device"), *(len(d) for d in devices)])

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def header(self, reason: bool = True) -> None:
        self.row("device", "state", "version", "running", "reason" if reason else "")

    def row(
        self, device: str, state: str, version: str | None, running: str | None, reason: str
    ) -> None:
        self.line(
            f"{device:<{self.width}}  {state:<{STATE_WIDTH}}  {version or '-':<9}  "
            f"{running or '-':<9}  {reason}".rstrip()
        )


def describe(step: DeploymentPayload) -> str:
    """The step's reason, with the shadow agreement where one was measured."""
    reason = step.reason or (step.source or "" if step.state == "accepted" else "")
    agreement = step.agreement or {}
    if step.state in ("promoted", "awaiting_approval") and agreement.get("windows"):
        decided = agreement.get("decision_agreement")
        shown = "-" if decided is None else f"{decided:.3f}"
        reason += f" (decision agreement {shown} over {agreement['windows']} windows)"
    return reason


# ---- the rollout ------------------------------------------------------------------------------
class Rollout:
    def __init__(
        self,
        session: Session,
        prefix: str,
        model: str,
        source: str,
        targets: list[Target],
        timeout_s: float,
        out: TextIO,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session, self.prefix, self.model, self.source = session, prefix, model, source
        self.targets = {t.device: t for t in targets}
        self.timeout_s, self.clock = timeout_s, clock
        self.table = Table(out, list(self.targets))

    def filters(self) -> list[str]:
        """Each device's deployment steps and command replies: subscribed before any command."""
        return [
            topic
            for device in self.targets
            for topic in (
                f"{self.prefix}/{device}/{self.model}/deployment/event",
                f"{self.prefix}/{device}/cmd/update/reply",
            )
        ]

    def run_stage(self, group: list[Target]) -> None:
        """Send the command to every device of the group, then follow each to its end."""
        body = {"model": self.model, "source": self.source}
        for target in group:
            target.sent_at = self.clock()
            target.mid = self.session.publish(
                f"{self.prefix}/{target.device}/cmd/update", body, target.correlation
            )
        while pending := [t for t in group if t.outcome is None]:
            wake = min(self._deadline(t) for t in pending)
            for message in self.session.take(min(wake - self.clock(), 1.0)):
                self._handle(message)
            now = self.clock()
            for target in pending:
                if target.outcome is None:
                    self._expire(target, now)

    def _deadline(self, target: Target) -> float:
        assert target.sent_at is not None
        deadline = target.sent_at + self.timeout_s
        if target.reply_at is not None:
            deadline = min(deadline, target.reply_at + self._grace(target))
        return deadline

    @staticmethod
    def _grace(target: Target) -> float:
        """How long a reply waits for the steps it may have overtaken."""
        assert target.reply is not None
        refusal = target.last is None and not target.reply.get("ok")
        return REFUSAL_GRACE_S if refusal else REPLY_GRACE_S

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        levels = message.topic.split("/")
        if len(levels) != 5 or levels[0] != self.prefix:
            return
        target = self.targets.get(levels[1])
        if target is None or target.sent_at is None or target.outcome is not None:
            return
        if levels[2:] == ["cmd", "update", "reply"]:
            correlation = getattr(message.properties, "CorrelationData", None)
            if correlation != target.correlation or target.reply is not None:
                return  # another requester's reply
            try:
                reply = json.loads(message.payload)
            except ValueError:
                reply = None
            if not isinstance(reply, dict):
                reply = {"ok": False, "error": "the reply is not a JSON object"}
            target.reply, target.reply_at = reply, self.clock()
        elif levels[2:] == [self.model, "deployment", "event"]:
            try:
                step = DeploymentPayload.model_validate_json(message.payload)
            except ValidationError:
                return
            if target.expected is not None and step.version not in (None, target.expected):
                return  # a step of another update of this model
            if target.expected is None and step.version is not None:
                target.expected = step.version
            target.last = step
            reason = describe(step)
            self.table.row(target.device, step.state, step.version, step.running, reason)
            if step.state in TERMINAL:
                target.outcome = Outcome(step.state, step.version, step.running, reason)

    def _expire(self, target: Target, now: float) -> None:
        assert target.sent_at is not None and target.mid is not None
        refused = self.session.refused_publishes.get(target.mid)
        last = target.last
        running = last.running if last is not None else target.known_running
        if refused is not None:
            outcome = Outcome(
                "not_sent", None, running, f"the broker refused the command: {refused}"
            )
        elif target.reply is not None and now >= (target.reply_at or 0) + self._grace(target):
            reply = target.reply
            state = str(reply.get("state")) if reply.get("ok") else "refused"
            version = reply.get("version")
            reason = str(reply.get("error") or state)
            if state not in TERMINAL or (state == "promoted" and target.expected != version):
                state, reason = "refused", f"unexpected reply {json.dumps(reply)[:200]}"
            outcome = Outcome(state, version, running, f"{reason} (command reply)")
        elif now >= target.sent_at + self.timeout_s:
            reason = (
                f"no end within {self.timeout_s:g} s, last step {last.state}"
                if last is not None
                else f"no step within {self.timeout_s:g} s: is the device online?"
            )
            outcome = Outcome("timeout", target.expected, running, reason)
        else:
            return
        target.outcome = outcome
        self.table.row(
            target.device, outcome.state, outcome.version, outcome.running, outcome.reason
        )


def stages(devices: list[str], canary: int, batch: int | None) -> list[tuple[str, list[str]]]:
    """[("canary", first `canary` devices), ("rest" | "batch i/n", ...), ...]."""
    plan = [("canary", devices[:canary])] if canary else []
    rest = devices[canary:]
    if not rest:
        return plan
    size = batch or len(rest)
    chunks = [rest[i : i + size] for i in range(0, len(rest), size)]
    if len(chunks) == 1:
        return [*plan, ("rest", chunks[0])]
    return [*plan, *((f"batch {i}/{len(chunks)}", c) for i, c in enumerate(chunks, 1))]


def _verify_bundle(request: DeployRequest, out: TextIO) -> tuple[str, str]:
    """Load the bundle as a device does (signature too, given --public-key); (name, version)."""
    from edge_agent.runtime import load_model
    from edge_agent.signing import TrustedKeys, signer

    assert request.bundle is not None
    trusted = TrustedKeys.load(request.public_keys) if request.public_keys else None
    runner = load_model(request.bundle, trusted=trusted)
    manifest = runner.manifest
    if runner.bundle.signed_by is not None:
        signature = f"signature verified: key {runner.bundle.signed_by}"
    elif (kid := signer(request.bundle)) is not None:
        signature = f"signed by key {kid} (not verified here: no --public-key)"
    else:
        signature = "unsigned"
    print(
        f"bundle {request.bundle}: {manifest.name} {manifest.version} ({manifest.task}), "
        f"golden test ok on {runner.backend}; {signature}",
        file=out,
        flush=True,
    )
    return manifest.name, manifest.version


def _discover(
    session: Session, prefix: str, level: str, model: str, wait_s: float
) -> dict[str, str | None]:
    """Devices whose retained status lists `model`: device -> the version it runs."""
    topic = f"{prefix}/{level}/status"
    session.subscribe([topic])
    statuses: dict[str, StatusPayload] = {}
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        for message in session.take(left):
            levels = message.topic.split("/")
            if len(levels) != 3 or not message.payload:
                continue
            try:
                statuses[levels[1]] = StatusPayload.model_validate_json(message.payload)
            except ValidationError:
                continue
    session.unsubscribe([topic])
    found: dict[str, str | None] = {}
    for device, status in sorted(statuses.items()):
        running = next((m for m in status.models or [] if m.id == model), None)
        if status.state != "offline" and running is not None:
            found[device] = running.version
    return found


def deploy(request: DeployRequest, out: TextIO | None = None) -> int:
    """Run a rollout; 0 when every targeted device promoted, 1 otherwise. Usage errors, a
    bundle that does not verify and an unreachable broker raise EdgeError (exit 2): nothing
    has been sent then."""
    out = out or sys.stdout
    _check(request)
    prefix, level = _prefix_and_filter(request)
    config = broker_config(request, prefix)
    expected = None
    model = request.model
    if request.bundle is not None:
        name, expected = _verify_bundle(request, out)
        model = model or name
    if model is None:
        raise ConfigError("--model is needed (or a BUNDLE, whose name is the default)")
    _identifier(model, "--model")

    session = Session(config, request.broker)
    try:
        session.open()
        known: dict[str, str | None] = {}
        if level is not None:
            known = _discover(session, prefix, level, model, request.discover_wait_s)
            if not known:
                raise ConfigError(
                    f"no device under {request.discover} lists model {model} in its retained "
                    f"status (waited {request.discover_wait_s:g} s)"
                )
            print(
                f"discovered {len(known)} device(s) running {model} under {request.discover}: "
                + ", ".join(f"{d} ({v})" for d, v in known.items()),
                file=out,
                flush=True,
            )
            current = [d for d, v in known.items() if expected is not None and v == expected]
            if current:
                print(f"already at {expected}, skipped: {', '.join(current)}", file=out)
            devices = [d for d in known if d not in current]
            if not devices:
                print(f"summary: nothing to do, every device runs {model} {expected}", file=out)
                return 0
        else:
            devices = list(request.devices or [])
        targets = [Target(d, expected, known_running=known.get(d)) for d in devices]
        rollout = Rollout(session, prefix, model, request.source, targets, request.timeout_s, out)
        return _run(rollout, targets, request, model, expected, out)
    finally:
        session.close()


def _run(
    rollout: Rollout,
    targets: list[Target],
    request: DeployRequest,
    model: str,
    expected: str | None,
    out: TextIO,
) -> int:
    plan = stages([t.device for t in targets], request.canary, request.batch)
    by_name = {t.device: t for t in targets}
    table = rollout.table
    started = time.monotonic()
    shown = " ".join(filter(None, (model, expected)))
    table.line(
        f"rollout of {shown} to {len(targets)} device(s) from {request.source}: "
        + "; then ".join(f"{name} {', '.join(group)}" for name, group in plan)
    )
    rollout.session.subscribe(rollout.filters())  # before any command is sent
    table.header()
    stopped = None
    for name, group in plan:
        table.line(f"-- {name}: {', '.join(group)}")
        members = [by_name[d] for d in group]
        rollout.run_stage(members)
        failed = [t for t in members if t.outcome is None or t.outcome.state != "promoted"]
        if failed:
            stopped = (name, failed)
            break

    table.line("")
    table.line("result:")
    table.header(reason=False)
    for target in targets:
        outcome = target.outcome
        if outcome is None:
            table.row(target.device, "not_started", None, target.known_running, "")
        else:
            table.row(target.device, outcome.state, outcome.version, outcome.running, "")
    promoted = [
        t.device for t in targets if t.outcome is not None and t.outcome.state == "promoted"
    ]
    versions = sorted({t.outcome.version for t in targets if t.outcome and t.outcome.version})
    elapsed = time.monotonic() - started
    if stopped is None:
        table.line(
            f"summary: {len(promoted)}/{len(targets)} devices promoted {model} to "
            f"{', '.join(versions) or '?'} in {elapsed:.1f} s"
        )
        return 0
    name, failed = stopped
    untouched = [t.device for t in targets if t.sent_at is None]
    failures = "; ".join(
        f"{t.device} {t.outcome.state if t.outcome else '?'}"
        + (f" ({t.outcome.reason})" if t.outcome and t.outcome.reason else "")
        for t in failed
    )
    table.line(
        f"summary: rollout stopped at {name}: {failures}; {len(promoted)}/{len(targets)} "
        "promoted"
        + (f", {len(untouched)} not started ({', '.join(untouched)})" if untouched else "")
        + f"; {elapsed:.1f} s"
    )
    return 1
