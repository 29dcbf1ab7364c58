"""Hot model updates on a running agent over a real Mosquitto with live simulator traffic:
promote after a shadow run, refuse bad bundles, roll back on a missed shadow bar and on command,
and come back after a restart running what the store says."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.bundle import MANIFEST_FILE
from edge_agent.config import load_agent_config
from edge_agent.mqtt.contract import DeploymentPayload
from tests.conftest import (
    REPO_ROOT,
    Broker,
    Subscriber,
    agent_config,
    agent_thread,
    mqtt_client,
    signed_bundle,
    wait_until,
)

DEVICE = "line-7"
MODEL = "vibration-fault"
BASE = f"pdm/{DEVICE}/{MODEL}"
TERMINAL = {"promoted", "rolled_back", "refused", "awaiting_approval"}


def bundle(tmp_path: Path, key: Path, folder: str, **changes) -> Path:
    """A signed copy of the reference classifier with manifest changes (version, labels ...)."""
    return signed_bundle(tmp_path / "bundles" / folder, key, MODEL, **changes)


def config(tmp_path: Path, broker: Broker, public: Path, seed: Path, extra: str = "") -> Path:
    path = agent_config(
        tmp_path,
        DEVICE,
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true\nblock_samples = 2560',
        [(MODEL, "motor")],
        broker_port=broker.port,
        mqtt_sink=True,
        extra=f'[security]\ntrusted_keys = ["{public}"]\n'
        f'[updates]\nenabled = true\nstore_dir = "{tmp_path / "store"}"\n'
        f"shadow_windows = 6\n{extra}",
    )
    path.write_text(path.read_text().replace(str(REPO_ROOT / "models" / MODEL), str(seed)))
    return path


class Steps:
    """The deployment events of the model, validated against the contract."""

    def __init__(self, sub: Subscriber) -> None:
        self.sub = sub

    def all(self) -> list[DeploymentPayload]:
        return [DeploymentPayload.model_validate(p) for p in self.sub.payloads("/deployment/event")]

    def wait_terminal(self, after: int) -> DeploymentPayload:
        wait_until(
            lambda: any(s.state in TERMINAL for s in self.all()[after:]), 60, "a final update step"
        )
        return next(s for s in self.all()[after:] if s.state in TERMINAL)


def command(broker: Broker, verb: str, body: dict) -> None:
    client = mqtt_client(broker, f"operator-{verb}")
    client.publish(f"pdm/{DEVICE}/cmd/{verb}", json.dumps(body).encode(), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_update_shadow_promote_refuse_roll_back_and_restart(
    broker: Broker, tmp_path: Path, key: tuple[Path, Path]
) -> None:
    """Test the whole lifecycle on live traffic: 1.0.1 (same model) is shadowed and promoted
    with full agreement and no window lost, duplicated or mixed; a tampered bundle and an older
    version are refused; 1.0.2 with its labels reversed misses the shadow bar and is rolled back;
    the rollback command returns to 1.0.0; a restart runs the store's current version."""
    private, public = key
    seed = bundle(tmp_path, private, "v100", version="1.0.0")
    sub = Subscriber(broker, f"pdm/{DEVICE}/#")
    steps = Steps(sub)
    agent = Agent(load_agent_config(config(tmp_path, broker, public, seed)))
    thread = agent_thread(agent)
    try:
        wait_until(lambda: len(sub.payloads(f"{MODEL}/result")) >= 3, 30, "results from 1.0.0")

        command(
            broker,
            "update",
            {"model": MODEL, "source": str(bundle(tmp_path, private, "v101", version="1.0.1"))},
        )
        promoted = steps.wait_terminal(0)
        assert promoted.state == "promoted" and promoted.version == "1.0.1", promoted
        assert [s.state for s in steps.all()] == [
            "accepted", "downloaded", "verified", "shadowing", "promoted"
        ]  # fmt: skip
        assert promoted.agreement is not None and promoted.agreement["windows"] >= 6
        assert promoted.agreement["decision_agreement"] == 1.0
        at = {s.state: s.ts for s in steps.all()}
        print(
            f"update timings: accepted -> verified {at['verified'] - at['accepted']:.3f} s "
            f"(copy, signature, hash, golden), shadow run {at['promoted'] - at['shadowing']:.3f} s "
            f"({promoted.agreement['windows']} windows), swap {promoted.swap_ms} ms"
        )
        wait_until(
            lambda: sub.payloads(f"{MODEL}/result")[-1]["model"]["version"] == "1.0.1",
            30,
            "results from 1.0.1",
        )

        tampered = bundle(tmp_path, private, "v103", version="1.0.3")
        (tampered / MANIFEST_FILE).write_text(
            (tampered / MANIFEST_FILE).read_text().replace("Rotating", "Rotten")
        )
        seen = len(steps.all())
        command(broker, "update", {"model": MODEL, "source": str(tampered)})
        refused = steps.wait_terminal(seen)
        assert refused.state == "refused" and "bad signature" in refused.reason
        seen = len(steps.all())
        command(broker, "update", {"model": MODEL, "source": str(seed)})
        refused = steps.wait_terminal(seen)
        assert refused.state == "refused" and "anti-rollback" in refused.reason

        labels = json.loads((seed / MANIFEST_FILE).read_text())["output"]["labels"]
        reversed_labels = bundle(
            tmp_path, private, "v102", version="1.0.2", output__labels=labels[::-1]
        )
        seen = len(steps.all())
        command(broker, "update", {"model": MODEL, "source": str(reversed_labels)})
        missed = steps.wait_terminal(seen)
        assert missed.state == "rolled_back" and "agreement" in missed.reason, missed
        assert missed.running == "1.0.1"

        seen = len(steps.all())
        command(broker, "rollback", {"model": MODEL})
        wait_until(lambda: len(steps.all()) > seen, 30, "the rollback step")
        back = steps.all()[seen]
        assert (back.state, back.running) == ("rolled_back", "1.0.0")
        wait_until(
            lambda: sub.payloads(f"{MODEL}/result")[-1]["model"]["version"] == "1.0.0",
            30,
            "results from 1.0.0 again",
        )
    finally:
        agent.stop_event.set()
        thread.join(30)

    results = sub.payloads(f"{MODEL}/result")
    seqs = [r["seq"] for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a result lost or duplicated"
    starts = [r["window"]["start"] for r in results]
    hop = 4096 / 25600
    assert all(b - a == pytest.approx(hop, abs=1e-6) for a, b in itertools.pairwise(starts)), (
        "a window lost, repeated or cut differently across a swap"
    )
    versions = [r["model"]["version"] for r in results]
    assert versions.index("1.0.1") < len(versions) and "1.0.2" not in versions

    restarted = Agent(load_agent_config(config(tmp_path, broker, public, seed)))
    assert restarted.pipelines[0].runner.manifest.version == "1.0.0"  # the store's current
    restarted.shutdown()
    sub.close()


@pytest.mark.parametrize("kill_at", ["accepted", "downloaded", "verified", "shadowing", "promoted"])
def test_sigkill_during_an_update_leaves_the_old_or_the_new_model(
    broker: Broker, tmp_path: Path, key: tuple[Path, Path], kill_at: str
) -> None:
    """Test an agent process killed with SIGKILL as soon as a step of an update is published:
    the restarted agent runs 1.0.0 or 1.0.1 from a complete store folder (its signature, hash
    and golden test pass), never a broken one, with no staging leftovers."""
    import signal
    import subprocess

    from edge_agent.updates.store import ModelStore
    from tests.conftest import start_agent

    private, public = key
    seed = bundle(tmp_path, private, "v100", version="1.0.0")
    update = bundle(tmp_path, private, "v101", version="1.0.1")
    path = config(tmp_path, broker, public, seed)
    sub = Subscriber(broker, f"{BASE}/deployment/event", client_id=f"kill-{kill_at}")
    agent = start_agent(path, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: ModelStore(tmp_path / "store").pointer(MODEL)["current"], 30, "seeded")
        results = Subscriber(broker, f"{BASE}/result", client_id=f"results-{kill_at}")
        wait_until(lambda: results.payloads("/result"), 30, "the agent running")
        results.close()
        command(broker, "update", {"model": MODEL, "source": str(update)})
        wait_until(
            lambda: kill_at in [p["state"] for p in sub.payloads("/deployment/event")],
            60,
            f"the {kill_at} step",
        )
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
    finally:
        if agent.poll() is None:
            agent.kill()
        sub.close()
    restarted = Agent(load_agent_config(path))
    try:
        version = restarted.pipelines[0].runner.manifest.version
        assert version in ("1.0.0", "1.0.1")
        assert restarted.pipelines[0].runner.bundle.signed_by is not None
        if kill_at == "promoted":
            assert version == "1.0.1"
        assert not list((tmp_path / "store" / MODEL).glob(".incoming-*"))
    finally:
        restarted.shutdown()
