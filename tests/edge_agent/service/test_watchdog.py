"""The systemd notify protocol through real datagram sockets (PID 1 here is not systemd, so the
test plays the service manager): READY, STATUS, RELOADING and STOPPING from the real process,
and WATCHDOG pings that flow while windows are processed or the broker is down, stop when a
source wedges, inference blocks or a broker connection cannot be recovered, and resume after."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.config import load_agent_config
from edge_agent.service.notify import Notifier
from edge_agent.sources.simulator import SimulatorSource
from tests.conftest import (
    Broker,
    agent_config,
    agent_thread,
    free_port,
    register_plugin,
    start_agent,
    wait_until,
)

PING_S = 0.25  # WATCHDOG_USEC = 0.5 s: the agent pings every 0.25 s


class ServiceManager:
    """The receiving end of $NOTIFY_SOCKET: records every message with its arrival time."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self.arrived = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self.arrived:
                self.messages.append((time.monotonic(), fields))
                self.arrived.notify_all()

    def count(self, key: str, value: str = "1", since: float = 0.0) -> int:
        with self.arrived:
            return sum(1 for t, m in self.messages if t >= since and m.get(key) == value)

    def wait_for(self, key: str, value: str = "1", since: float = 0.0, timeout: float = 20) -> bool:
        """Wait for a message (an event, with a timeout); False if none came."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while self.count(key, value, since) == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(left)
            return True

    def keys(self) -> list[str]:
        with self.arrived:
            return [
                k for _, m in self.messages for k in m if k in ("READY", "RELOADING", "STOPPING")
            ]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def manager(tmp_path: Path):
    instance = ServiceManager(str(tmp_path / "notify.sock"))
    yield instance
    instance.close()


def test_notifier_reaches_path_and_abstract_sockets(tmp_path: Path) -> None:
    """Test that messages reach both a path socket and an abstract ('@') socket intact, and
    that without $NOTIFY_SOCKET nothing is sent."""
    for address in (str(tmp_path / "n.sock"), f"@edge-agent-test-{os.getpid()}"):
        receiver = ServiceManager(address)
        try:
            Notifier(address).ready("online; 0.0 results/s")
            assert receiver.wait_for("READY", timeout=5)
            assert receiver.messages[0][1]["STATUS"] == "online; 0.0 results/s"
            assert receiver.messages[0][1]["MAINPID"] == str(os.getpid())
        finally:
            receiver.close()
    assert Notifier("").send(READY=1) is False


def test_real_process_readiness_pings_reload_and_stop(
    manager: ServiceManager, tmp_path: Path
) -> None:
    """Test the real agent under a notify socket with its broker down: READY with a STATUS
    naming the unreachable broker, steady WATCHDOG pings while windows flow, RELOADING then
    READY on SIGHUP, STOPPING on SIGTERM, exit 0."""
    config = agent_config(
        tmp_path,
        "svc1",
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true',
        [("vibration-fault", "motor")],
        broker_port=free_port(),  # nothing listens: the broker is down
        mqtt_options="reconnect_min_s = 1\nreconnect_max_s = 1",
        mqtt_sink=True,
    )
    env = {**os.environ, "NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": str(int(2e6 * PING_S))}
    env.pop("WATCHDOG_PID", None)
    agent = start_agent(config, env=env)
    try:
        assert manager.wait_for("READY", timeout=60), "READY=1"
        ready_at, ready = next((t, m) for t, m in manager.messages if m.get("READY") == "1")
        assert "broker unreachable" in ready["STATUS"], ready
        wait_until(lambda: manager.count("WATCHDOG", since=ready_at) >= 8, 20, "8 pings")
        statuses = [m["STATUS"] for _, m in manager.messages if "STATUS" in m]
        assert any("results/s" in s and "spool" in s for s in statuses), statuses[-3:]
        agent.send_signal(signal.SIGHUP)
        assert manager.wait_for("RELOADING", timeout=30)
        reloaded = next(t for t, m in manager.messages if m.get("RELOADING") == "1")
        assert manager.wait_for("READY", since=reloaded, timeout=30)
        agent.send_signal(signal.SIGTERM)
        assert manager.wait_for("STOPPING", timeout=30)
        _, stderr = agent.communicate(timeout=30)
    finally:
        agent.kill()
    assert agent.returncode == 0, stderr[-2000:]
    assert manager.keys() == ["READY", "RELOADING", "READY", "STOPPING"]
    pings = [t for t, m in manager.messages if m.get("WATCHDOG") == "1"]
    assert max(b - a for a, b in itertools.pairwise(pings)) < 4 * PING_S + 2.0  # reload included


class WedgingDriver:
    """A steady source (a simulator) that stops delivering while its thread stays alive, until
    `release` is set, as a driver blocked on a dead bus would."""

    steady = True

    def __init__(self, source_id: str, wedge_after: int) -> None:
        from edge_agent.config.sources import SimulatorSourceConfig

        self.id = source_id
        self.counters: dict[str, int] = {}
        self.wedge_after = wedge_after
        self.release = threading.Event()
        self._inner = SimulatorSource(
            SimulatorSourceConfig(kind="simulator", id=source_id, block_samples=2048)
        )

    def run(self, emit, stop: threading.Event) -> None:
        sent = 0

        def gate(block) -> None:
            nonlocal sent
            sent += 1
            if sent == self.wedge_after:
                self.release.wait()  # wedged, yet the thread lives
            emit(block)

        self._inner.run(gate, stop)


DRIVERS: dict[str, WedgingDriver] = {}


def make_wedging(source_id: str, options: dict) -> WedgingDriver:
    DRIVERS[source_id] = WedgingDriver(source_id, int(options["wedge_after"]))
    return DRIVERS[source_id]


def _in_process_agent(
    folder: Path,
    manager: ServiceManager,
    monkeypatch: pytest.MonkeyPatch,
    sources: str,
    broker: Broker | None = None,
    sink_options: str = "",
) -> Agent:
    monkeypatch.setenv("NOTIFY_SOCKET", manager.address)
    monkeypatch.setenv("WATCHDOG_USEC", str(int(2e6 * PING_S)))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    config = agent_config(
        folder,
        "svc2",
        sources,
        [("vibration-fault", "motor")],
        broker_port=broker.port if broker else None,
        mqtt_options="reconnect_min_s = 1\nreconnect_max_s = 1",
        mqtt_sink=broker is not None,
        sink_options=sink_options,
        extra="[supervisor]\ncheck_interval_s = 0.1\nidle_after_s = 1\nrecovery_deadline_s = 1.5",
    )
    return Agent(load_agent_config(config))


def _withheld_then_resumed(manager: ServiceManager, agent: Agent, release) -> None:
    """Pings stop (none for three intervals once the agent withholds them or blocks), then
    resume after `release()`."""
    quiet_from = time.monotonic()
    assert not manager.wait_for("WATCHDOG", since=quiet_from, timeout=3 * 2 * PING_S), (
        "a ping arrived while the agent could not do its job"
    )
    release()
    assert manager.wait_for("WATCHDOG", since=time.monotonic(), timeout=20), "pings resumed"


SIMULATOR = '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true\nblock_samples = 2048'


def test_wedged_source_stops_the_pings(
    manager: ServiceManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test that a steady source whose thread lives but delivers nothing stops the pings (so
    systemd restarts the service), and that they resume when it delivers again."""
    register_plugin(monkeypatch, "wedging", "tests.edge_agent.service.test_watchdog:make_wedging")
    agent = _in_process_agent(
        tmp_path,
        manager,
        monkeypatch,
        '[[sources]]\nkind = "plugin"\nid = "motor"\nplugin = "wedging"\n'
        "options = { wedge_after = 10 }",
    )
    thread = agent_thread(agent)
    try:
        assert manager.wait_for("WATCHDOG", timeout=30)
        wait_until(lambda: agent.counters["watchdog_withheld"] >= 1, 20, "pings withheld")
        assert agent.sources.stuck() == ["motor"]
        _withheld_then_resumed(manager, agent, DRIVERS["motor"].release.set)
    finally:
        DRIVERS["motor"].release.set()
        agent.stop_event.set()
        thread.join(20)


def test_blocked_inference_stops_the_pings(
    manager: ServiceManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test that an interpreter call that never returns (here: blocked on an event) stops the
    pings, because they come from the loop that runs inference; they resume once it returns."""
    agent = _in_process_agent(tmp_path, manager, monkeypatch, SIMULATOR)
    runner = agent.pipelines[0].runner
    original, entered, unblock = runner.predict, threading.Event(), threading.Event()

    def blocking(features):
        entered.set()
        unblock.wait()
        return original(features)

    thread = agent_thread(agent)
    try:
        assert manager.wait_for("WATCHDOG", timeout=30)
        monkeypatch.setattr(runner, "predict", blocking)
        assert entered.wait(30), "inference entered"
        _withheld_then_resumed(manager, agent, unblock.set)
    finally:
        unblock.set()
        agent.stop_event.set()
        thread.join(20)


def test_unrecoverable_broker_connection_stops_the_pings(
    manager: ServiceManager, broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test that a broker frozen with SIGSTOP, on which even the replacement connection gets
    no answer, stops the pings after recovery_deadline_s, and that they resume once the
    broker answers again (SIGCONT)."""
    agent = _in_process_agent(
        tmp_path, manager, monkeypatch, SIMULATOR, broker, "inflight = 8\nstall_timeout_s = 1"
    )
    thread = agent_thread(agent)
    assert broker.process is not None
    try:
        assert manager.wait_for("WATCHDOG", timeout=30)
        os.kill(broker.process.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: agent.counters["watchdog_withheld"] >= 1, 30, "pings withheld")
            _withheld_then_resumed(
                manager, agent, lambda: os.kill(broker.process.pid, signal.SIGCONT)
            )
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
    finally:
        agent.stop_event.set()
        thread.join(20)


def test_ready_status_says_connected_when_the_broker_is_up(
    manager: ServiceManager, broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test five starts against a running broker: READY's STATUS= line says "broker connected"
    every time (it was once computed before the connection was marked, and said "unreachable"
    for a whole status interval)."""
    for attempt in range(5):
        since = time.monotonic()
        (tmp_path / str(attempt)).mkdir()
        agent = _in_process_agent(tmp_path / str(attempt), manager, monkeypatch, SIMULATOR, broker)
        thread = agent_thread(agent)
        try:
            assert manager.wait_for("READY", since=since, timeout=30)
            with manager.arrived:
                ready = next(m for t, m in manager.messages if t >= since and m.get("READY"))
            assert "broker connected" in ready["STATUS"], (attempt, ready)
        finally:
            agent.stop_event.set()
            thread.join(20)
