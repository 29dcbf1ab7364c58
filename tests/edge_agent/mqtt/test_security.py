"""TLS (mutual), passwords and ACLs against a real Mosquitto with certificates made in the test:
the good client certificate is accepted; expired, wrongly signed and missing ones are refused
with a clear log line; an ACL keeps one device out of another's topics."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Broker, free_port, start_agent, wait_until
from tests.pki import make_pki


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory):
    """Mosquitto with a mutual-TLS listener (identity = certificate CN) and a password listener,
    both under an ACL that gives each device its own subtree."""
    folder = tmp_path_factory.mktemp("secure")
    pki = make_pki(folder / "pki")
    (folder / "acl").write_text(
        "user rig1\ntopic readwrite pdm/rig1/#\n\nuser admin\ntopic read pdm/#\n"
    )
    passwords = folder / "passwd"
    passwords.write_text("rig1:s3cret\n")
    subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
    tls_port, password_port = free_port(), free_port()
    listeners = f"""
listener {tls_port} 127.0.0.1
cafile {pki / "ca.pem"}
certfile {pki / "server.pem"}
keyfile {pki / "server.key"}
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
acl_file {folder / "acl"}

listener {password_port} 127.0.0.1
allow_anonymous false
password_file {passwords}
acl_file {folder / "acl"}
"""
    broker = Broker(folder, listeners=listeners)
    broker.tls_port, broker.password_port, broker.pki = tls_port, password_port, pki
    broker.start()
    yield broker
    broker.stop()


def _agent_config(folder: Path, mqtt: str, device: str = "rig1", reconnect_max_s: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "agent.toml"
    path.write_text(f"""
device_id = "{device}"
shutdown_timeout_s = 3
[mqtt]
reconnect_min_s = 1
reconnect_max_s = {reconnect_max_s}
{mqtt}
[[sources]]
kind = "simulator"
id = "motor"
realtime = true
[[models]]
bundle = "{REPO_ROOT / "models/vibration-fault"}"
source = "motor"
[[sinks]]
kind = "mqtt"
spool_dir = "{folder / "spool"}"
""")
    return path


def _tls(broker: Broker, cert: str | None) -> str:
    lines = [
        'host = "localhost"',
        f"port = {broker.tls_port}",
        "[mqtt.tls]",
        f'ca_file = "{broker.pki / "ca.pem"}"',
    ]
    if cert:
        lines += [
            f'cert_file = "{broker.pki / (cert + ".pem")}"',
            f'key_file = "{broker.pki / (cert + ".key")}"',
        ]
    return "\n".join(lines)


class Admin:
    """A TLS client with the admin certificate, reading everything under pdm/."""

    def __init__(self, broker: Broker) -> None:
        import paho.mqtt.client as mqtt

        from edge_agent.config.mqtt import MqttConfig, TlsConfig
        from edge_agent.mqtt.client import make_client

        config = MqttConfig(
            host="localhost",
            port=broker.tls_port,
            tls=TlsConfig(
                ca_file=broker.pki / "ca.pem",
                cert_file=broker.pki / "admin.pem",
                key_file=broker.pki / "admin.key",
            ),
        )
        self.topics: list[str] = []
        self.ready = __import__("threading").Event()
        client = make_client(config, "admin")
        client.on_connect = lambda c, *_: c.subscribe("pdm/#", qos=1)
        client.on_subscribe = lambda *_: self.ready.set()
        client.on_message = lambda _c, _u, m: self.topics.append(m.topic)
        client.connect("localhost", broker.tls_port)
        client.loop_start()
        self.client: mqtt.Client = client
        wait_until(self.ready.is_set, 10, "admin subscription")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _run_until(config: Path, predicate, what: str, timeout: float = 20) -> str:
    process = start_agent(config)
    try:
        wait_until(predicate, timeout, what)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    return stderr


def test_good_client_certificate_is_accepted(secure_broker: Broker, tmp_path: Path) -> None:
    """Test that the agent with a CA-signed client certificate publishes over mutual TLS."""
    admin = Admin(secure_broker)
    try:
        _run_until(
            _agent_config(tmp_path, _tls(secure_broker, "client")),
            lambda: any(t.endswith("/result") for t in admin.topics),
            "a result over TLS",
        )
    finally:
        admin.close()
    assert "pdm/rig1/status" in admin.topics


def _until_logged(
    folder: Path, mqtt: str, marker: str, device: str = "rig1", also=lambda: True, **options
) -> str:
    """Run the agent until its log shows `marker` and `also()` holds; return the whole log."""
    config = _agent_config(folder, mqtt, device, **options)
    log = folder / "agent.log"
    with log.open("w") as handle:
        process = start_agent(config, stderr=handle)
        try:
            wait_until(lambda: marker in log.read_text() and also(), 20, f"'{marker}' in the log")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
    return log.read_text()


def _tls_attempts(broker: Broker) -> int:
    """Connection attempts the broker has seen on its TLS listener, from its own log: a
    handshake that fails early is logged as "Client connection from ... failed" instead."""
    lines = (broker.folder / "mosquitto.log").read_text().splitlines()
    return sum(
        ("New connection from" in line and f"on port {broker.tls_port}." in line)
        or ("Client connection from" in line and "failed" in line)
        for line in lines
    )


@pytest.mark.parametrize(
    ("cert", "expected"),
    [("expired", "certificate expired"), ("rogue", "unknown ca"), (None, "certificate required")],
)
def test_bad_client_certificates_are_refused_with_a_clear_line(
    secure_broker: Broker, tmp_path: Path, cert: str | None, expected: str
) -> None:
    """Test that a refused certificate is logged once per distinct reason over 3+ attempts."""
    before = _tls_attempts(secure_broker)
    stderr = _until_logged(
        tmp_path,
        _tls(secure_broker, cert),
        "cannot connect to broker",
        also=lambda: _tls_attempts(secure_broker) >= before + 3,
        reconnect_max_s=1,
    )
    lines = [json.loads(x) for x in stderr.splitlines() if "cannot connect to broker" in x]
    assert "SSL" in lines[0]["error"] and expected in lines[0]["error"].lower(), lines[0]
    per_reason = Counter(line["error"] for line in lines)
    assert set(per_reason.values()) == {1}, per_reason  # one line per reason, not per attempt
    assert "Traceback" not in stderr


def test_passwords_and_acl(secure_broker: Broker, tmp_path: Path) -> None:
    """Test a password from a file, a wrong password refused, and an ACL denying rig2's topics."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    good = (
        f'host = "127.0.0.1"\nport = {secure_broker.password_port}\nusername = "rig1"\n'
        f'password = {{ file = "{secret}" }}'
    )
    admin = Admin(secure_broker)
    try:
        _run_until(
            _agent_config(tmp_path / "good", good),
            lambda: any(t.startswith("pdm/rig1/") and t.endswith("/result") for t in admin.topics),
            "a result with a password",
        )
        # rig1's credentials used by a device calling itself rig2: the broker refuses it.
        log = _until_logged(tmp_path / "other", good, "broker rejected a message", device="rig2")
    finally:
        admin.close()
    assert not any(t.startswith("pdm/rig2/") for t in admin.topics)
    assert "Not authorized" in log and "s3cret" not in log
    wrong = tmp_path / "wrong"
    wrong.write_text("guess\n")
    log = _until_logged(
        tmp_path / "bad", good.replace(str(secret), str(wrong)), "broker refused connection"
    )
    assert "Not authorized" in log or "Bad user name or password" in log
    assert "guess" not in log
