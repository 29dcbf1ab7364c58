"""Ed25519 signatures over a bundle's manifest (`manifest.sig`), checked before anything parses.

The manifest pins the model's sha256, so a signature over the exact manifest bytes covers the
model too. A device with trusted public keys configured refuses unsigned bundles, unknown keys
and bad signatures; the key id (the first 16 hex digits of the sha256 of the raw public key)
lets the refusal say which key signed.

Key loading and verification run in a short-lived child (edge_agent/verifier.py), so the
long-lived agent never imports `cryptography` (~7 MB resident). Each check costs one process
start (~0.1 s here) at start, reload and update; a verdict is remembered for the same bytes.
Signing and key generation are workstation commands and import it directly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import BundleError, ConfigError, EdgeError

SIGNATURE_FILE = "manifest.sig"
ALGORITHM = "ed25519"
CHECK_TIMEOUT_S = 60.0  # one child's start, import and check; minutes would mean a hung box
VERIFIED_KEPT = 256  # good verdicts remembered, ~100 bytes each
_VERIFIED: dict[tuple[bytes, bytes, bytes], None] = {}  # (key, signature, sha256), oldest first


def _serialization():
    """cryptography's key loading (the device extra has it); imported only where keys are used."""
    from cryptography.hazmat.primitives import serialization

    return serialization


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class TrustedKeys:
    """Public keys a device accepts bundles from: key id -> raw 32-byte Ed25519 key."""

    keys: dict[str, bytes]

    @classmethod
    def load(cls, paths: list[Path]) -> TrustedKeys:
        answer = _check({"op": "keys", "paths": [str(p) for p in paths]}, ConfigError)
        raw = [bytes.fromhex(k) for k in answer["keys"]]
        return cls({key_id(key): key for key in raw})


def _check(request: dict[str, object], error: type[EdgeError]) -> dict:
    """One request to `python -m edge_agent.verifier` (see there); a refusal or a child that
    could not answer is one `error` line."""
    root = str(Path(__file__).resolve().parents[1])  # the child runs this very edge_agent
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edge_agent.verifier"],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=CHECK_TIMEOUT_S,
            env={**os.environ, "PYTHONPATH": path},
        )
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        raise error(f"signature check could not run ({exc})") from None
    if not isinstance(answer, dict):
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
        raise error(f"signature check failed (exit {done.returncode}): {lines[-1]}")
    if "error" in answer:
        raise error(answer["error"])
    return answer


def _valid(key: bytes, signature: bytes, data: bytes) -> bool:
    """The child's verdict; a good one is remembered by the manifest's sha256 (not its bytes),
    so a reload, which re-reads every bundle, starts a child only for what changed."""
    seen = (key, signature, hashlib.sha256(data).digest())
    if seen in _VERIFIED:
        return True
    request = {
        "op": "verify",
        "key": key.hex(),
        "signature": base64.b64encode(signature).decode(),
        "data": base64.b64encode(data).decode(),
    }
    if not _check(request, BundleError)["valid"]:
        return False
    _VERIFIED[seen] = None
    if len(_VERIFIED) > VERIFIED_KEPT:
        del _VERIFIED[next(iter(_VERIFIED))]  # the oldest
    return True


def verify(root: Path, manifest_bytes: bytes, trusted: TrustedKeys) -> str:
    """Check `manifest.sig` against the raw manifest bytes; returns the signing key's id."""
    path = root / SIGNATURE_FILE
    try:
        signature = json.loads(path.read_bytes())
        kid, algorithm = signature["key_id"], signature["algorithm"]
        blob = base64.b64decode(signature["signature"], validate=True)
    except FileNotFoundError:
        raise BundleError(
            f"{root}: unsigned bundle refused (no {SIGNATURE_FILE}; trusted keys are configured)"
        ) from None
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BundleError(f"{path}: not a signature file") from None
    if algorithm != ALGORITHM:
        raise BundleError(f"{path}: algorithm {algorithm!r} is not {ALGORITHM}")
    key = trusted.keys.get(kid)
    if key is None:
        raise BundleError(f"{root}: signed by unknown key {kid} (not one of the trusted keys)")
    if not _valid(key, blob, manifest_bytes):
        raise BundleError(
            f"{root}: bad signature from key {kid} (manifest changed after signing, or forged)"
        )
    return kid


def signer(root: Path) -> str | None:
    """The key id a bundle says it was signed with (unverified), or None when unsigned."""
    try:
        return str(json.loads((root / SIGNATURE_FILE).read_bytes())["key_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def generate(out: Path, name: str) -> tuple[Path, Path, str]:
    """A new key pair: `<name>.key` (private, PKCS8 PEM, mode 0600) and `<name>.pub` (PEM)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    serialization = _serialization()
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    for existing in (private_path, public_path):
        if existing.exists():
            raise ConfigError(f"{existing} exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    public = key.public_key()
    public_path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private_path, public_path, key_id(raw)


def sign(root: Path, private_key: Path) -> str:
    """Write `manifest.sig` for the bundle at `root`; returns the key id."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    serialization = _serialization()
    try:
        key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{private_key}: cannot read a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{private_key}: not an Ed25519 private key")
    from edge_agent.bundle import MANIFEST_FILE

    manifest = (root / MANIFEST_FILE).read_bytes()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = key_id(raw)
    signature = {
        "algorithm": ALGORITHM,
        "key_id": kid,
        "signature": base64.b64encode(key.sign(manifest)).decode(),
    }
    (root / SIGNATURE_FILE).write_text(json.dumps(signature, indent=1) + "\n")
    return kid
