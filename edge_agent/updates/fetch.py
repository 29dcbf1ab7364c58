"""Bringing a bundle onto the device: from a folder on it, or over http(s) with TLS verified.

Only the bundle's three files are fetched (`<url>/manifest.json`, `model.tflite`, optional
`manifest.sig`), each under a size cap and a timeout; no other scheme, nothing executed.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from edge_agent.bundle import MANIFEST_FILE, MODEL_FILE
from edge_agent.errors import BundleError
from edge_agent.signing import SIGNATURE_FILE

REQUIRED = (MANIFEST_FILE, MODEL_FILE)


def fetch(source: str, staging: Path, max_bytes: int, timeout_s: float) -> None:
    scheme = urlsplit(source).scheme
    if scheme in ("http", "https"):
        _download(source.rstrip("/"), staging, max_bytes, timeout_s)
    elif scheme or "://" in source:
        raise BundleError(f"{source}: only a folder on the device or an http(s) URL is accepted")
    else:
        _copy(Path(source), staging, max_bytes)


def _copy(folder: Path, staging: Path, max_bytes: int) -> None:
    if not folder.is_dir():
        raise BundleError(f"{folder}: bundle folder not found on the device")
    for name in (*REQUIRED, SIGNATURE_FILE):
        path = folder / name
        if not path.exists():
            if name in REQUIRED:
                raise BundleError(f"{path}: missing from the bundle")
            continue
        if path.stat().st_size > max_bytes:
            raise BundleError(f"{path}: larger than the {max_bytes} byte cap")
        shutil.copyfile(path, staging / name)


def _download(base: str, staging: Path, max_bytes: int, timeout_s: float) -> None:
    for name in (*REQUIRED, SIGNATURE_FILE):
        url = f"{base}/{name}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                data = response.read(max_bytes + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and name not in REQUIRED:
                continue
            raise BundleError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BundleError(f"{url}: cannot download ({reason})") from None
        if len(data) > max_bytes:
            raise BundleError(f"{url}: larger than the {max_bytes} byte cap")
        (staging / name).write_bytes(data)
