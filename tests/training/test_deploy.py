"""`edge-train deploy` against a real Mosquitto and three in-process agents with updates enabled,
each on live simulator traffic with its own model store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.bundle import MANIFEST_FILE
from edge_agent.config import load_agent_config
from tests.conftest import (
    REPO_ROOT,
    Broker,
    Subscriber,
    agent_config,
    agent_thread,
    free_port,
    signed_bundle,
    wait_until,
)
from training.cli import main
from training.deploy import stages

MODEL = "vibration-fault"
DEVICES = ["line-1", "line-2", "line-3"]


def bundle(tmp_path: Path, key: Path, folder: str, **changes) -> Path:
    """A signed copy of the reference classifier with manifest changes (version, labels ...)."""
    return signed_bundle(tmp_path / "bundles" / folder, key, MODEL, **changes)


@contextmanager
def fleet(
    tmp_path: Path, broker: Broker, public: Path, seed: Path, devices: list[str] = DEVICES
) -> Iterator[list[Agent]]:
    """One agent per device, each with its own folder, spool, store and anti-rollback record."""
    agents, threads = [], []
    try:
        for device in devices:
            folder = tmp_path / device
            folder.mkdir()
            path = agent_config(
                folder,
                device,
                '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true\n'
                "block_samples = 2560",
                [(MODEL, "motor")],
                broker_port=broker.port,
                mqtt_sink=True,
                extra=f'[security]\ntrusted_keys = ["{public}"]\n'
                f'versions_file = "{folder / "accepted.json"}"\n'
                f'[updates]\nenabled = true\nstore_dir = "{folder / "store"}"\n'
                "shadow_windows = 4\n",
            )
            path.write_text(path.read_text().replace(str(REPO_ROOT / "models" / MODEL), str(seed)))
            agent = Agent(load_agent_config(path))
            agents.append(agent)
            threads.append(agent_thread(agent))
        yield agents
    finally:
        for agent in agents:
            agent.stop_event.set()
        for thread in threads:
            thread.join(30)


def running(sub: Subscriber, device: str) -> str | None:
    """The version of the model the device's latest status message lists."""
    statuses = [s for s in sub.payloads(f"{device}/status") if s.get("models")]
    return statuses[-1]["models"][0]["version"] if statuses else None


def steps(sub: Subscriber, device: str) -> list[str]:
    """The deployment steps the test subscriber has seen from the device, in order."""
    return [p["state"] for p in sub.payloads(f"{device}/{MODEL}/deployment/event")]


def topics(sub: Subscriber) -> list[str]:
    with sub.lock:
        return [topic for topic, _, _ in sub.messages]


def deploy(broker: Broker, public: Path, update: Path, *targets: str) -> int:
    return main(
        [
            "deploy",
            str(update),
            "--public-key",
            str(public),
            "--broker",
            f"mqtt://127.0.0.1:{broker.port}",
            "--source",
            str(update),
            "--timeout",
            "60",
            *targets,
        ]
    )


def test_canary_promoted_then_the_rest(
    broker: Broker, tmp_path: Path, key: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Test discovery, canary first, then the other two: all promoted, exit 0, a rerun skips all."""
    private, public = key
    seed = bundle(tmp_path, private, "v100", version="1.0.0")
    update = bundle(tmp_path, private, "v101", version="1.0.1")
    sub = Subscriber(broker, "pdm/#")
    with fleet(tmp_path, broker, public, seed) as agents:
        wait_until(lambda: all(running(sub, d) == "1.0.0" for d in DEVICES), 30, "3 devices")
        code = deploy(broker, public, update, "--discover", "pdm/+", "--discover-wait", "1")
        out = capsys.readouterr().out
        assert code == 0, out
        assert [a.pipelines[0].runner.manifest.version for a in agents] == ["1.0.1"] * 3

        wait_until(
            lambda: all(steps(sub, d)[-1:] == ["promoted"] for d in DEVICES),
            30,
            "the test subscriber to see every promotion",
        )
        with sub.lock:
            messages = list(sub.messages)
        seen = [topic for topic, _, _ in messages]
        assert sorted(t for t in seen if t.endswith("/cmd/update")) == [
            f"pdm/{d}/cmd/update" for d in DEVICES
        ]
        promoted_at = next(
            i
            for i, (t, p, _) in enumerate(messages)
            if t == f"pdm/line-1/{MODEL}/deployment/event" and json.loads(p)["state"] == "promoted"
        )
        assert seen.index("pdm/line-1/cmd/update") < promoted_at
        assert seen.index("pdm/line-2/cmd/update") > promoted_at
        assert seen.index("pdm/line-3/cmd/update") > promoted_at

        lines = out.splitlines()
        assert "discovered 3 device(s) running vibration-fault under pdm/+" in out
        assert lines.index("-- canary: line-1") < lines.index("-- rest: line-2, line-3")
        result = lines[lines.index("result:") + 2 :]
        for device in DEVICES:
            assert f"{device}  promoted" in "\n".join(result)
        assert lines[-1].startswith("summary: 3/3 devices promoted vibration-fault to 1.0.1 in ")

        wait_until(lambda: all(running(sub, d) == "1.0.1" for d in DEVICES), 30, "new status")
        commands = len([t for t in topics(sub) if t.endswith("/cmd/update")])
        code = deploy(broker, public, update, "--discover", "pdm/+", "--discover-wait", "1")
        out = capsys.readouterr().out
        assert code == 0, out
        assert "already at 1.0.1, skipped: line-1, line-2, line-3" in out
        assert len([t for t in topics(sub) if t.endswith("/cmd/update")]) == commands
    sub.close()


def test_a_failing_canary_stops_the_rollout(
    broker: Broker, tmp_path: Path, key: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Test that a canary rolled back (labels reversed) leaves the others untouched on 1.0.0."""
    private, public = key
    seed = bundle(tmp_path, private, "v100", version="1.0.0")
    labels = json.loads((seed / MANIFEST_FILE).read_text())["output"]["labels"]
    reversed_labels = bundle(
        tmp_path, private, "v101-reversed", version="1.0.1", output__labels=labels[::-1]
    )
    sub = Subscriber(broker, "pdm/#")
    with fleet(tmp_path, broker, public, seed) as agents:
        wait_until(lambda: all(running(sub, d) == "1.0.0" for d in DEVICES), 30, "3 devices")
        code = deploy(
            broker, public, reversed_labels, "--devices", ",".join(DEVICES), "--canary", "1"
        )
        out = capsys.readouterr().out
        assert code == 1, out

        wait_until(lambda: steps(sub, "line-1")[-1:] == ["rolled_back"], 30, "the canary's end")
        assert steps(sub, "line-1") == [
            "accepted", "downloaded", "verified", "shadowing", "rolled_back"
        ]  # fmt: skip
        for device in DEVICES[1:]:  # new results: anything sent before has arrived by now
            before = len(sub.payloads(f"{device}/{MODEL}/result"))
            wait_until(
                lambda d=device, n=before: len(sub.payloads(f"{d}/{MODEL}/result")) > n,
                30,
                f"a new result from {device}",
            )
            assert sub.payloads(f"{device}/{MODEL}/result")[-1]["model"]["version"] == "1.0.0"
            touched = [t for t in topics(sub) if t.startswith(f"pdm/{device}/") and "/cmd/" in t]
            touched += [t for t in topics(sub) if t.startswith(f"pdm/{device}/{MODEL}/deploy")]
            assert touched == [], touched
        assert [a.pipelines[0].runner.manifest.version for a in agents] == ["1.0.0"] * 3

        lines = out.splitlines()
        assert "-- rest: line-2, line-3" not in lines
        assert lines[-1].startswith(
            "summary: rollout stopped at canary: line-1 rolled_back (shadow decision agreement"
        ), lines[-1]
        assert "0/3 promoted, 2 not started (line-2, line-3)" in lines[-1]
        result = "\n".join(lines[lines.index("result:") + 2 :])
        assert "line-1  rolled_back" in result
        assert "line-2  not_started" in result and "line-3  not_started" in result
    sub.close()


def test_a_command_the_device_turns_down_fails_at_once(
    broker: Broker, tmp_path: Path, key: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Test that a device's reply refusing the command (unknown model id) is a failure, exit 1."""
    private, public = key
    seed = bundle(tmp_path, private, "v100", version="1.0.0")
    sub = Subscriber(broker, "pdm/#")
    with fleet(tmp_path, broker, public, seed, ["line-1"]):
        wait_until(lambda: running(sub, "line-1") == "1.0.0", 30, "the device")
        url = f"mqtt://127.0.0.1:{broker.port}"
        args = ["--model", "no-such-model", "--devices", "line-1", "--source", str(seed)]
        code = main(["deploy", *args, "--broker", url, "--timeout", "60"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "line-1  refused" in out
    assert "unknown model 'no-such-model' (command reply)" in out.splitlines()[-1], out
    sub.close()


def test_stages_canaries_then_the_rest_or_batches() -> None:
    """Test the stage order: canaries, then the rest at once or in batches of --batch."""
    assert stages(list("abcde"), 1, None) == [("canary", ["a"]), ("rest", ["b", "c", "d", "e"])]
    assert stages(list("abcde"), 2, 2) == [
        ("canary", ["a", "b"]),
        ("batch 1/2", ["c", "d"]),
        ("batch 2/2", ["e"]),
    ]
    assert stages(list("ab"), 0, None) == [("rest", ["a", "b"])]
    assert stages(list("ab"), 5, None) == [("canary", ["a", "b"])]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broker", "http://host:1883", "--devices", "a"], "expected mqtt://host[:port]"),
        (["--broker", "mqtt://host", "--tls-ca", "ca.pem", "--devices", "a"], "needs an mqtts://"),
        (["--broker", "mqtt://host", "--discover", "pdm/+/x"], "expected <prefix>/+"),
        (["--broker", "mqtt://host", "--discover", "pdm/+", "--prefix", "x"], "not under --prefix"),
        (["--broker", "mqtt://host", "--devices", "a,a"], "lists a device twice"),
        (["--broker", "mqtt://host", "--devices", "a/b"], "is not a valid id"),
        (["--broker", "mqtt://host", "--devices", "a", "--canary", "-1"], "--canary"),
        (["--broker", "mqtt://host", "--devices", "a", "--username", "u"], "go together"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Test that bad arguments are one line on stderr and exit 2, with nothing sent."""
    code = main(["deploy", "--model", MODEL, "--source", "/bundles/x", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("edge-train: error: ") and err.count("\n") == 1, err
    assert message in err, err


def test_an_unreachable_broker_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Test that a broker that refuses the TCP connection is one line and exit 2."""
    broker = f"mqtt://127.0.0.1:{free_port()}"
    code = main(
        ["deploy", "--model", MODEL, "--source", "/b", "--devices", "a", "--broker", broker]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"cannot connect to {broker}: " in err and err.count("\n") == 1, err
