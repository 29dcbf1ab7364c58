"""Ed25519 signatures over a bundle's manifest (`manifest.sig`), checked before anything parses.

The manifest pins the model's sha256, so a signature over the exact manifest bytes covers the
model too. A device with trusted public keys configured refuses unsigned bundles, unknown keys
and bad signatures; the key id (the first 16 hex digits of the sha256 of the raw public key)
lets the refusal say which key signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import BundleError, ConfigError

SIGNATURE_FILE = "manifest.sig"
ALGORITHM = "ed25519"


def _serialization():
    """cryptography's key loading (the device extra has it); imported only where keys are used."""
    from cryptography.hazmat.primitives import serialization

    return serialization


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class TrustedKeys:
    """Public keys a device accepts bundles from, by key id."""

    keys: dict[str, object]  # key id -> Ed25519PublicKey

    @classmethod
    def load(cls, paths: list[Path]) -> TrustedKeys:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        serialization = _serialization()
        keys: dict[str, object] = {}
        for path in paths:
            try:
                key = serialization.load_pem_public_key(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"trusted key {path}: cannot read a PEM public key ({exc})"
                ) from None
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigError(f"trusted key {path}: not an Ed25519 public key")
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            keys[key_id(raw)] = key
        return cls(keys)


def verify(root: Path, manifest_bytes: bytes, trusted: TrustedKeys) -> str:
    """Check `manifest.sig` against the raw manifest bytes; returns the signing key's id."""
    from cryptography.exceptions import InvalidSignature

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
    try:
        key.verify(blob, manifest_bytes)  # type: ignore[attr-defined]
    except InvalidSignature:
        raise BundleError(
            f"{root}: bad signature from key {kid} (manifest changed after signing, or forged)"
        ) from None
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
