"""Shared fixtures: the C-MAPSS location, small bring-your-own-data files and real tiny bundles.

Tiny bundles are really trained (a few epochs), converted to full int8 and verified on the
interpreter, once per session, so every bundle test exercises real files. They are also real
models: tests/training holds each to a quality bar on its held-out data (a high learning rate
lets three epochs get there).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
import pytest

from edge_agent.demo.broker import find_mosquitto, free_port  # the demo starts its broker alike

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from edge_agent.agent import Agent
    from edge_agent.events import Event

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_RATE = 1000.0


def _shared_data(variable: str, name: str, marker: str, what: str) -> Path:
    """$variable, else ../shared/data/<name> beside the checkout (as in CI); a missing
    `marker` file fails the test, naming the folder and the variable."""
    directory = Path(os.environ.get(variable, REPO_ROOT.parent / "shared" / "data" / name))
    if not (directory / marker).is_file():
        pytest.fail(f"{what} not found in {directory}; set {variable}")
    return directory


@pytest.fixture(scope="session")
def cmapss_dir() -> Path:
    """The C-MAPSS files: $CMAPSS_DIR, else ../shared/data/cmapss beside the checkout (as in CI)."""
    return _shared_data("CMAPSS_DIR", "cmapss", "train_FD001.txt", "C-MAPSS FD001")


@pytest.fixture(scope="session")
def nab_dir() -> Path:
    """NAB recordings and windows.json: $NAB_DIR, else ../shared/data/nab beside the checkout."""
    return _shared_data("NAB_DIR", "nab", "windows.json", "NAB recordings")


def write_labelled_csv(path: Path, seed: int, seconds_per_label: float = 4.0) -> Path:
    """Two machine states differing in their dominant tone: 3 channels at 1 kHz plus ts, label."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = 1_700_000_000.0
    n = int(seconds_per_label * TINY_RATE)
    for index, (label, tone) in enumerate((("normal", 50.0), ("worn", 180.0)) * 2):
        t = (index * n + np.arange(n)) / TINY_RATE
        base = np.sin(2 * np.pi * tone * t)
        noise = rng.normal(scale=0.3, size=(n, 3))
        for i in range(n):
            rows.append(
                f"{t0 + t[i]:.3f},{base[i] + noise[i, 0]:.5f},"
                f"{0.5 * base[i] + noise[i, 1]:.5f},{noise[i, 2]:.5f},{label}"
            )
    path.write_text("ts,ax,ay,az,label\n" + "\n".join(rows) + "\n")
    return path


def write_rul_csv(path: Path, seed: int, units: int, truncate: bool) -> Path:
    """Run-to-failure units whose two sensors drift as failure nears; test units stop early."""
    rng = np.random.default_rng(seed)
    lines = ["unit,cycle,s1,s2,rul"]
    for unit in range(1, units + 1):
        life = int(rng.integers(60, 120))
        stop = int(rng.integers(30, life)) if truncate else life
        for cycle in range(1, stop + 1):
            wear = cycle / life
            s1 = 5 * wear**2 + rng.normal(scale=0.1)
            s2 = 100 - 8 * wear + rng.normal(scale=0.3)
            lines.append(f"{unit},{cycle},{s1:.4f},{s2:.4f},{life - cycle}")
    path.write_text("\n".join(lines) + "\n")
    return path


CLASSIFIER_TOML = """
name = "tiny-classifier"
task = "classification"
seed = 3
[dataset]
kind = "table"
train = "train.csv"
test = "test.csv"
channels = ["ax", "ay", "az"]
label_column = "label"
[input]
window = 128
hop = 64
normalise = "features"
[[input.features]]
op = "remove_mean"
# Low and high band energies side by side as channels: the classifier pools over the band axis
# (GlobalAveragePooling1D), so which tone is present must show in *which channel* is loud.
[[input.features]]
op = "concat"
axis = "channels"
branches = [
  [{ op = "spectrum_bands", n_bands = 8, f_min = 0.0, f_max = 120.0 }],
  [{ op = "spectrum_bands", n_bands = 8, f_min = 120.0, f_max = 500.0 }],
]
[model]
architecture = "cnn1d_classifier"
filters = [4]
kernel_size = 3
dense_units = []
epochs = 3
batch_size = 16
learning_rate = 0.03
"""

ANOMALY_TOML = """
name = "tiny-anomaly"
task = "anomaly"
seed = 4
[dataset]
kind = "table"
train = "train.csv"
channels = ["ax", "ay", "az"]
label_column = "label"
normal_label = "normal"
[input]
window = 128
hop = 64
normalise = "features"
[[input.features]]
op = "spectrum_bands"
n_bands = 16
f_min = 0.0
f_max = 500.0
[[input.features]]
op = "flatten"
[model]
architecture = "dense_autoencoder"
dense_units = [8]
epochs = 5
batch_size = 16
[output]
threshold_quantile = 0.9
"""

RUL_TOML = """
name = "tiny-rul"
task = "rul"
seed = 5
[dataset]
kind = "table"
train = "train.csv"
test = "test.csv"
channels = ["s1", "s2"]
unit_column = "unit"
rul_column = "rul"
[input]
window = 20
hop = 2
normalise = "channels"
[model]
architecture = "cnn1d_regressor"
filters = [4]
kernel_size = 3
dense_units = [8]
epochs = 3
batch_size = 32
learning_rate = 0.05
[output]
rul_cap = 60
"""


def make_project(folder: Path, task: str) -> Path:
    """A folder with data files and a config for one task; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    if task == "rul":
        write_rul_csv(folder / "train.csv", seed=1, units=12, truncate=False)
        write_rul_csv(folder / "test.csv", seed=2, units=6, truncate=True)
        text = RUL_TOML
    else:
        write_labelled_csv(folder / "train.csv", seed=1)
        write_labelled_csv(folder / "test.csv", seed=2, seconds_per_label=2.0)
        text = CLASSIFIER_TOML if task == "classification" else ANOMALY_TOML
    config = folder / f"{task}.toml"
    config.write_text(text)
    return config


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One really trained, int8-converted and verified bundle per task (trained once)."""
    from training.cli import main

    root = tmp_path_factory.mktemp("tiny")
    bundles = {}
    for task in ("classification", "anomaly", "rul"):
        config = make_project(root / task, task)
        code = main(
            [
                "train",
                str(config),
                "--models",
                str(root / "models"),
                "--reports",
                str(root / "reports"),
            ]
        )
        assert code == 0
        bundles[task] = (
            root / "models" / f"tiny-{'classifier' if task == 'classification' else task}"
        )
    return bundles


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, Path]:
    """A signing key pair made for this test: (private, public)."""
    from edge_agent.signing import generate

    private, public, _ = generate(tmp_path / "keys", "ci")
    return private, public


def signed_bundle(path: Path, key: Path, source: str = "vibration-fault", **changes) -> Path:
    """A copy of a reference bundle at `path`, its manifest changed first (`output__labels`
    sets a nested key), then signed with `key`."""
    import json
    import shutil

    from edge_agent.bundle import MANIFEST_FILE
    from edge_agent.signing import sign

    shutil.copytree(REPO_ROOT / "models" / source, path)
    if changes:
        data = json.loads((path / MANIFEST_FILE).read_text())
        for dotted, value in changes.items():
            *parents, last = dotted.split("__")
            target = data
            for part in parents:
                target = target[part]
            target[last] = value
        (path / MANIFEST_FILE).write_text(json.dumps(data, indent=1))
    sign(path, key)
    return path


class ListSink:
    """A sink that keeps what it is given, for tests that look at a pipeline's events."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass

    def close(self, timeout: float = 0.0) -> None:
        pass


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll an observable condition (not a fixed sleep) until true; fail after `timeout`."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_more(count, more: int, timeout: float, what: str) -> int:
    """Wait until `count()` has grown by `more` from its value now, which is returned."""
    before = count()
    wait_until(lambda: count() >= before + more, timeout, what)
    return before


class Broker:
    """A real Mosquitto on a free loopback port, with its own config and log."""

    def __init__(self, folder: Path, persistence: bool = False, listeners: str = "") -> None:
        self.folder = folder
        self.port = free_port()
        binary = find_mosquitto()
        if binary is None:  # one line, never a fake broker and never a skip
            pytest.fail(
                "Mosquitto is not installed: `make test` installs it, or apt-get install mosquitto"
            )
        self.binary = binary
        self.config = folder / "mosquitto.conf"
        import getpass

        # Started as root, Mosquitto drops to the `mosquitto` user unless told otherwise, and
        # could then not write its log or persistence file into this test's folder.
        lines = [
            "per_listener_settings true",
            listeners,
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # A test subscriber must see every message: no per-client queue limit to drop at.
            "max_queued_messages 0",
            f"user {getpass.getuser()}",
            f"log_dest file {folder / 'mosquitto.log'}",
            "log_type all",
        ]
        if persistence:  # sessions and queued messages survive a broker restart
            lines += ["persistence true", f"persistence_location {folder}/", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        self.config.write_text("\n".join(lines) + "\n")
        self.process = None

    def start(self) -> None:
        import socket
        import subprocess

        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def accepting() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.process.returncode}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(accepting, 10, "mosquitto to accept connections")

    def stop(self) -> None:
        """SIGTERM, as an operator would: Mosquitto saves its persistence file and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def broker(tmp_path: Path):
    """A running Mosquitto for one test (apt-get install mosquitto; .ci/run does it)."""
    instance = Broker(tmp_path)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def durable_broker(tmp_path: Path):
    """A Mosquitto with persistence, for tests that stop and restart it."""
    (tmp_path / "broker").mkdir()
    instance = Broker(tmp_path / "broker", persistence=True)
    instance.start()
    yield instance
    instance.stop()


class Subscriber:
    """A durable MQTT v5 subscriber (persistent session, QoS 1) that records what it receives."""

    def __init__(self, broker: Broker, topic: str, client_id: str = "test-sub") -> None:
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        # MQTT 3.1.1 with clean_session=False: Mosquitto 2.0.11 restores these sessions from its
        # persistence file after a restart.
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        client.reconnect_delay_set(1, 1)

        def on_connect(c, _u, _f, reason, _p):
            if not reason.is_failure:
                c.subscribe(topic, qos=1)

        def on_message(_c, _u, message):
            with self.lock:
                self.messages.append((message.topic, message.payload, message.retain))

        client.on_connect = on_connect
        client.on_subscribe = lambda *_a: self.subscribed.set()
        client.on_message = on_message
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        self.client = client
        wait_until(self.subscribed.is_set, 10, "subscription")

    def payloads(self, suffix: str) -> list[dict]:
        import json

        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix) and p]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_client(
    broker: Broker, client_id: str, protocol: int | None = None, **callbacks
) -> mqtt.Client:
    """A paho client (MQTT 3.1.1 by default; `on_*` callbacks set first) on `broker`, looping."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311 if protocol is None else protocol,
    )
    for name, callback in callbacks.items():
        setattr(client, name, callback)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def read_jsonl(path: Path) -> list[dict]:
    """Complete JSON lines written so far (a line still being written is skipped)."""
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def agent_config(
    folder: Path,
    device: str,
    sources: str,
    models: list[tuple[str, str]],
    *,
    broker_port: int | None = None,
    mqtt_options: str = "",
    mqtt_sink: bool = False,
    sink_options: str = "",
    extra: str = "",
) -> Path:
    """Write an agent config: sources as TOML text, models as (reference bundle, source id)
    pairs, an optional [mqtt] broker and MQTT sink (spool in `folder`), then `extra` TOML
    (more sinks, say)."""
    parts = [f'device_id = "{device}"\nshutdown_timeout_s = 5']
    if broker_port is not None:
        parts.append(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n{mqtt_options}')
    parts.append(sources)
    parts += [
        f'[[models]]\nbundle = "{REPO_ROOT / "models" / b}"\nsource = "{s}"' for b, s in models
    ]
    if mqtt_sink:
        parts.append(f'[[sinks]]\nkind = "mqtt"\nspool_dir = "{folder / "spool"}"\n{sink_options}')
    parts.append(extra)
    path = folder / "agent.toml"
    path.write_text("\n".join(parts) + "\n")
    return path


def start_agent(
    config: Path,
    stderr: int | IO = subprocess.PIPE,
    stdout: int | IO = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start `edge-agent run -c config` as a real process (text mode, stdout discarded)."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "-c", str(config)],
        cwd=REPO_ROOT,
        env=env,
        stdout=stdout,
        stderr=stderr,
        text=True,
    )


def run_cli(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `edge-agent *args` to completion (in `env` if given), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def agent_thread(agent: Agent) -> threading.Thread:
    """Run an in-process `Agent` on a daemon thread; return the started thread."""
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    return thread


def register_plugin(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Make `name` (factory `value`, "module:attr") the only source plugin installed."""
    from importlib.metadata import EntryPoint

    from edge_agent.sources import plugins

    point = EntryPoint(name=name, value=value, group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        plugins, "entry_points", lambda group: [point] if group == plugins.ENTRY_POINT_GROUP else []
    )
