"""Ed25519 checks in a short-lived process (`python -m edge_agent.verifier`).

`cryptography` adds ~7 MB to a process that imports it, and the agent needs it only at start,
reload and update, so the agent asks this child instead and never imports it: one JSON request
on stdin, one JSON answer on stdout, exit 0 whenever it answered (a refusal is an answer).

    {"op": "keys", "paths": [PEM file, ...]}        -> {"keys": [raw public key hex, ...]}
    {"op": "verify", "key": hex, "signature": b64, "data": b64} -> {"valid": true | false}

Any problem the operator must fix comes back as {"error": "<one line>"}.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

MISSING = "cryptography is not installed (the [agent] extra has it: pip install 'edge-pdm[agent]')"


def public_keys(paths: list[str]) -> dict[str, Any]:
    """The raw 32-byte keys of PEM Ed25519 public keys, in order; the first bad file is an
    error naming it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = []
    for path in paths:
        try:
            key = serialization.load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            return {"error": f"trusted key {path}: cannot read a PEM public key ({exc})"}
        if not isinstance(key, Ed25519PublicKey):
            return {"error": f"trusted key {path}: not an Ed25519 public key"}
        encoding = serialization.Encoding.Raw
        raw.append(key.public_bytes(encoding, serialization.PublicFormat.Raw).hex())
    return {"keys": raw}


def valid(key: str, signature: str, data: str) -> dict[str, Any]:
    """Whether `signature` is the key's Ed25519 signature over `data` (both base64)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key))
    try:
        public.verify(base64.b64decode(signature), base64.b64decode(data))
    except InvalidSignature:
        return {"valid": False}
    return {"valid": True}


def answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        if request["op"] == "keys":
            return public_keys(request["paths"])
        return valid(request["key"], request["signature"], request["data"])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "cryptography":
            return {"error": MISSING}
        raise


if __name__ == "__main__":
    print(json.dumps(answer(json.load(sys.stdin))))
