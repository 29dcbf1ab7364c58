"""Signed bundles: a device with trusted keys loads only bundles signed by one of them, intact,
unexpired and not older than what it accepted, and refuses every other before any interpreter
parses a byte of the model."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.agent import build_pipelines
from edge_agent.bundle import MANIFEST_FILE, MODEL_FILE
from edge_agent.config import load_agent_config
from edge_agent.errors import BundleError, ConfigError
from edge_agent.runtime import model as model_module
from edge_agent.runtime.model import load_model
from edge_agent.signing import SIGNATURE_FILE, TrustedKeys, generate
from tests.conftest import (
    REPO_ROOT,
    agent_config,
    run_cli,
    signed_bundle,
    start_agent,
    wait_until,
)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Two key pairs made for this test: the device trusts `good` only."""
    found = {}
    for name in ("good", "other"):
        private, public, _ = generate(tmp_path / "keys", name)
        found[name], found[f"{name}.pub"] = private, public
    return found


def signed_copy(
    tmp_path: Path,
    key: Path,
    folder: str = "b",
    source: str = "vibration-fault",
    **manifest_changes,
) -> Path:
    return signed_bundle(tmp_path / folder, key, source, **manifest_changes)


@pytest.fixture
def no_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Instrument the backend: any attempt to get an interpreter fails the test."""

    def touched(*_args, **_kwargs):
        raise AssertionError("an interpreter was created for a bundle that should be refused")

    monkeypatch.setattr(model_module, "resolve_interpreter", touched)


def _truncate(size):
    def cut(bundle: Path) -> None:
        data = (bundle / MODEL_FILE).read_bytes()
        (bundle / MODEL_FILE).write_bytes(data[: size(len(data))])

    return cut


def _flip_model_byte(bundle: Path) -> None:
    data = bytearray((bundle / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / MODEL_FILE).write_bytes(bytes(data))


def _edit_manifest(bundle: Path) -> None:
    data = json.loads((bundle / MANIFEST_FILE).read_text())
    data["version"] = "9.0.0"
    (bundle / MANIFEST_FILE).write_text(json.dumps(data, indent=1) + "\n")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_edit_manifest, "bad signature"),
        (_flip_model_byte, "does not match manifest model_sha256"),
        (_truncate(lambda n: 0), "does not match"),
        (_truncate(lambda n: 8), "does not match"),
        (_truncate(lambda n: n // 2), "does not match"),
        (_truncate(lambda n: n - 1), "does not match"),
        (lambda b: (b / SIGNATURE_FILE).unlink(), "unsigned bundle refused"),
        (lambda b: (b / SIGNATURE_FILE).write_text("{}"), "not a signature file"),
    ],
    ids=["manifest", "model-byte", "model-0", "model-8", "model-half", "model-1-short",
         "unsigned", "garbage-signature"],
)  # fmt: skip
def test_damaged_bundles_are_refused_before_the_interpreter(
    tmp_path: Path, keys: dict[str, Path], no_interpreter: None, damage, message: str
) -> None:
    """Test each damage to a signed bundle is refused with one sentence, interpreter untouched."""
    bundle = signed_copy(tmp_path, keys["good"])
    damage(bundle)
    with pytest.raises(BundleError, match=message):
        load_model(bundle, trusted=TrustedKeys.load([keys["good.pub"]]))


def test_wrong_key_and_expiry_are_refused_before_the_interpreter(
    tmp_path: Path, keys: dict[str, Path], no_interpreter: None
) -> None:
    """Test that a bundle signed by an untrusted key, and one past its not_after, are refused."""
    trusted = TrustedKeys.load([keys["good.pub"]])
    with pytest.raises(BundleError, match="unknown key"):
        load_model(signed_copy(tmp_path, keys["other"], "o"), trusted=trusted)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    with pytest.raises(BundleError, match="expired"):
        load_model(signed_copy(tmp_path, keys["good"], "e", not_after=past), trusted=trusted)


def test_a_good_signature_loads_and_names_its_key(tmp_path: Path, keys: dict[str, Path]) -> None:
    """Test a signed, unexpired bundle loads with trusted keys and reports the verified key; a
    private key file is mode 0600."""
    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    bundle = signed_copy(tmp_path, keys["good"], not_after=future)
    runner = load_model(bundle, trusted=TrustedKeys.load([keys["good.pub"], keys["other.pub"]]))
    assert runner.bundle.signed_by is not None and runner.golden_error is not None
    assert keys["good"].stat().st_mode & 0o777 == 0o600


def test_the_cli_signs_and_check_model_verifies(tmp_path: Path) -> None:
    """Test `edge-train keygen`/`sign` and `edge-agent check-model --public-key` end to end:
    verified with the key, said plainly without it, refused with another key (one line)."""
    import subprocess
    import sys

    def train_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "training.cli", *args],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    bundle = tmp_path / "b"
    shutil.copytree(REPO_ROOT / "models/vibration-fault", bundle)
    for name in ("ci", "stranger"):
        assert train_cli("keygen", "--out", str(tmp_path / "k"), "--name", name).returncode == 0
    signed = train_cli("sign", str(bundle), "--key", str(tmp_path / "k/ci.key"))
    assert signed.returncode == 0, signed.stderr
    ok = run_cli("check-model", str(bundle), "--public-key", str(tmp_path / "k/ci.pub"))
    assert ok.returncode == 0 and "signature verified: key" in ok.stdout, ok.stderr
    plain = run_cli("check-model", str(bundle))
    assert "but not verified: give --public-key" in plain.stdout
    refused = run_cli("check-model", str(bundle), "--public-key", str(tmp_path / "k/stranger.pub"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "unknown key" in refused.stderr


def _signed_config(tmp_path: Path, keys: dict[str, Path], bundle: Path, extra: str = "") -> Path:
    """An agent config serving `bundle` as the simulator's vibration-fault model, with the
    good key trusted and accepted versions kept in tmp_path; `extra` TOML after that."""
    path = agent_config(
        tmp_path,
        "dev",
        '[[sources]]\nkind = "simulator"\nid = "m"',
        [("vibration-fault", "m")],
        extra=f'[security]\ntrusted_keys = ["{keys["good.pub"]}"]\n'
        f'versions_file = "{tmp_path / "accepted.json"}"\n{extra}',
    )
    path.write_text(
        path.read_text().replace(str(REPO_ROOT / "models/vibration-fault"), str(bundle))
    )
    return path


def test_anti_rollback_across_restarts(tmp_path: Path, keys: dict[str, Path]) -> None:
    """Test that once 1.0.1 was accepted, a signed 1.0.0 and a different signed 1.0.1 are
    refused, the same 1.0.1 loads again (a restart), and 1.0.2 goes forward."""

    v101 = signed_copy(tmp_path, keys["good"], "v101", version="1.0.1")
    build_pipelines(load_agent_config(_signed_config(tmp_path, keys, v101)))
    build_pipelines(
        load_agent_config(_signed_config(tmp_path, keys, v101))
    )  # the same bundle after a restart
    older = signed_copy(tmp_path, keys["good"], "v100", version="1.0.0")
    with pytest.raises(BundleError, match="anti-rollback"):
        build_pipelines(load_agent_config(_signed_config(tmp_path, keys, older)))
    # other model bytes under the same name and version number
    other = signed_copy(
        tmp_path,
        keys["good"],
        "v101b",
        "vibration-anomaly",
        name="vibration-fault",
        version="1.0.1",
    )
    with pytest.raises(BundleError, match="anti-rollback"):
        build_pipelines(load_agent_config(_signed_config(tmp_path, keys, other)))
    newer = signed_copy(tmp_path, keys["good"], "v102", version="1.0.2")
    build_pipelines(load_agent_config(_signed_config(tmp_path, keys, newer)))
    assert (
        json.loads((tmp_path / "accepted.json").read_text())["vibration-fault"]["version"]
        == "1.0.2"
    )


def test_a_refused_bundle_at_reload_leaves_the_running_model_serving(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    """Test that reloading onto a tampered signed bundle replies with the refusal and keeps the
    running pipeline (same object, same verified key)."""
    from edge_agent.agent import Agent

    config = _signed_config(tmp_path, keys, signed_copy(tmp_path, keys["good"], "good"))
    agent = Agent(load_agent_config(config), config)
    running = agent.pipelines[0]
    bad = signed_copy(tmp_path, keys["good"], "bad")
    _edit_manifest(bad)
    _signed_config(tmp_path, keys, bad)  # the same file, now naming the tampered bundle
    reply = agent.reload()
    assert reply["ok"] is False and "bad signature" in reply["error"]
    assert agent.pipelines[0] is running and running.runner.bundle.signed_by is not None
    assert agent.counters["reload_failures"] == 1
    agent.shutdown()


@pytest.mark.parametrize("updates", [False, True])
def test_check_config_is_a_dry_run(tmp_path: Path, keys: dict[str, Path], updates: bool) -> None:
    """Test that `check-config` verifies a signed bundle but writes no state: no accepted
    versions file and (with updates on) no model store."""
    bundle = signed_copy(tmp_path, keys["good"], "b")
    store = f'[updates]\nenabled = true\nstore_dir = "{tmp_path / "store"}"\n' if updates else ""
    config = _signed_config(tmp_path, keys, bundle, store)
    result = run_cli("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "accepted.json").exists()
    assert not (tmp_path / "store").exists()


def test_bad_trusted_keys_are_one_config_error_naming_the_file(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    """Test that a missing, a non-PEM and a non-Ed25519 trusted key file each give one
    ConfigError line naming that file, whatever the good keys beside it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key\n")
    ec_key = tmp_path / "ec.pub"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for bad, message in [
        (tmp_path / "missing.pub", "cannot read a PEM public key"),
        (garbage, "cannot read a PEM public key"),
        (ec_key, "not an Ed25519 public key"),
    ]:
        with pytest.raises(ConfigError) as caught:
            TrustedKeys.load([keys["good.pub"], bad])
        assert str(caught.value).startswith(f"trusted key {bad}: {message}")
        assert "\n" not in str(caught.value)


def test_a_device_without_cryptography_says_so_in_one_line(
    tmp_path: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test that when the verifying child cannot import cryptography (shadowed here by a
    package that is not there), loading trusted keys is one ConfigError saying what to install."""
    shadow = tmp_path / "shadow" / "cryptography"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'cryptography'\", name='cryptography')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    with pytest.raises(ConfigError, match=r"cryptography is not installed .*edge-pdm\[agent\]"):
        TrustedKeys.load([keys["good.pub"]])


def test_a_running_agent_never_loads_cryptography(tmp_path: Path, keys: dict[str, Path]) -> None:
    """Test that `edge-agent run` verifying a signed bundle serves results while no cryptography
    library is mapped into its process (the checks ran in a child; ~7 MB less resident)."""
    bundle = signed_copy(tmp_path, keys["good"])
    out = tmp_path / "out.jsonl"
    config = _signed_config(tmp_path, keys, bundle, f'[[sinks]]\nkind = "jsonl"\npath = "{out}"')
    process = start_agent(config)
    try:
        wait_until(lambda: out.exists() and out.stat().st_size > 0, 60, "a first result")
        maps = Path(f"/proc/{process.pid}/maps").read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "_pydantic_core" in maps  # the check reads this process's own mappings
    assert "cryptography" not in maps


def test_a_verdict_is_remembered_only_for_the_same_bytes(
    tmp_path: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test that verifying the same signed manifest again (a reload) starts no second child,
    while a re-signed, changed manifest is checked by a child of its own."""
    from edge_agent import signing

    requests = []
    real = signing._check

    def counted(request, error):
        requests.append(request["op"])
        return real(request, error)

    monkeypatch.setattr(signing, "_check", counted)
    monkeypatch.setattr(signing, "_VERIFIED", {})
    bundle = signed_copy(tmp_path, keys["good"])
    for _ in range(2):
        load_model(bundle, trusted=TrustedKeys.load([keys["good.pub"]]))
    assert requests == ["keys", "verify", "keys"]
    changed = signed_copy(tmp_path, keys["good"], "c", version="9.9.9")
    load_model(changed, trusted=TrustedKeys.load([keys["good.pub"]]))
    assert requests[3:] == ["keys", "verify"]
