"""Reading a model bundle: manifest validated and model hash verified before any parsing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.errors import BundleError
from edge_agent.manifest import Manifest
from edge_agent.schema import read_validated
from edge_agent.signing import TrustedKeys, verify

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.tflite"
TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    model: bytes
    signed_by: str | None = None  # the verified signing key's id; None when not checked


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(path: Path) -> Manifest:
    manifest, _ = read_validated(path, json.loads, Manifest, BundleError, "manifest", "JSON")
    return manifest


def read_bundle(path: str | Path, trusted: TrustedKeys | None = None) -> Bundle:
    """Load and verify a bundle; the model bytes are only trusted once their hash matches.

    With trusted keys, the signature over the raw manifest bytes is checked before the manifest
    is even parsed, and an expired bundle is refused: nothing unsigned reaches a parser."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root}: bundle directory not found")
    signed_by = None
    if trusted is not None:
        try:
            raw = (root / MANIFEST_FILE).read_bytes()
        except FileNotFoundError:
            raise BundleError(f"{root / MANIFEST_FILE}: manifest not found") from None
        signed_by = verify(root, raw, trusted)
    manifest = read_manifest(root / MANIFEST_FILE)
    expires = manifest.not_after
    if trusted is not None and expires is not None and datetime.now(UTC) > expires:
        raise BundleError(f"{root}: bundle expired at {expires.isoformat()}")
    model_path = root / MODEL_FILE
    try:
        model = model_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{model_path}: model file not found") from None
    actual = sha256_hex(model)
    if actual != manifest.model_sha256:
        raise BundleError(
            f"{model_path}: sha256 {actual[:16]}... does not match manifest model_sha256 "
            f"{manifest.model_sha256[:16]}... (file truncated, corrupt or replaced)"
        )
    if model[4:8] != TFLITE_IDENTIFIER:
        raise BundleError(f"{model_path}: not a TFLite flatbuffer (identifier {model[4:8]!r})")
    return Bundle(path=root, manifest=manifest, model=model, signed_by=signed_by)
