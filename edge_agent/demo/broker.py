"""A broker for the demo without any set-up: Mosquitto when installed, else amqtt in-process.

amqtt 0.12 speaks MQTT 3.1.1 only (it refuses a v5 CONNECT), so `protocol` says what the
demo's agent and subscriber must use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from edge_agent.errors import ConfigError

MOSQUITTO_PATHS = ("mosquitto", "/usr/sbin/mosquitto")
START_TIMEOUT_S = 10.0


@dataclass
class DemoBroker:
    host: str
    port: int
    kind: Literal["mosquitto", "amqtt", "external"]
    protocol: Literal["5", "3.1.1"]
    _stop: list = field(default_factory=list, repr=False)

    def stop(self) -> None:
        while self._stop:
            self._stop.pop()()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_mosquitto() -> str | None:
    return next((p for p in map(shutil.which, MOSQUITTO_PATHS) if p), None)


def external(url: str) -> DemoBroker:
    """`mqtt://host:port` (port 1883 when omitted) of a broker the user runs."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ConfigError(f"--broker {url!r}: expected mqtt://host:port")
    return DemoBroker(parts.hostname, parts.port or 1883, "external", "5")


def start_mosquitto(binary: str) -> DemoBroker:
    """A private Mosquitto on a free loopback port, its config and log in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="edge-demo-broker-"))
    port = free_port()
    (folder / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"log_dest file {folder / 'mosquitto.log'}\n"
    )
    process = subprocess.Popen(
        [binary, "-c", str(folder / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    broker = DemoBroker("127.0.0.1", port, "mosquitto", "5")

    def stop() -> None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)

    broker._stop.append(stop)
    _wait_accepting(broker, lambda: process.poll() is None, "mosquitto")
    return broker


def start_amqtt() -> DemoBroker:
    """amqtt's broker on its own event-loop thread, on a free loopback port."""
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise ConfigError(
            "no MQTT broker: install Mosquitto (apt-get install mosquitto), or the demo extra "
            "(pip install -e '.[demo]') for an embedded one, or give --broker mqtt://host:port"
        ) from None
    for name in ("amqtt", "transitions"):  # its connection and shutdown chatter is not the demo's
        logging.getLogger(name).setLevel(logging.CRITICAL)
    port = free_port()
    loop = asyncio.new_event_loop()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    server = Broker(config, loop=loop)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="amqtt", daemon=True)
    thread.start()
    broker = DemoBroker("127.0.0.1", port, "amqtt", "3.1.1")

    def stop() -> None:  # amqtt's shutdown takes about 5 s here (its own timeouts)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(START_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_S)

    broker._stop.append(stop)
    if not started.wait(START_TIMEOUT_S):
        raise ConfigError("the embedded amqtt broker did not start")
    _wait_accepting(broker, thread.is_alive, "amqtt")
    return broker


def start(url: str | None, prefer: Literal["auto", "amqtt"] = "auto") -> DemoBroker:
    """The user's broker if given, else Mosquitto if installed, else the embedded one."""
    if url is not None:
        return external(url)
    binary = find_mosquitto() if prefer == "auto" else None
    return start_mosquitto(binary) if binary else start_amqtt()


def _wait_accepting(broker: DemoBroker, alive, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            broker.stop()
            raise ConfigError(f"{what} exited at start (port {broker.port})")
        with socket.socket() as sock:
            if sock.connect_ex((broker.host, broker.port)) == 0:
                return
        time.sleep(0.05)
    broker.stop()
    raise ConfigError(f"{what} did not accept connections on port {broker.port}")
