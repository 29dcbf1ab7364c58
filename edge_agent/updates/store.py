"""Installed bundles under the state directory: `<store>/<name>/<version>/` and a pointer file.

Every change is a rename: a bundle is written to `.incoming-*`, fsynced and renamed into its
version folder; `pointer.json` (current and previous version) is written to a temporary file,
fsynced and renamed. A crash at any step leaves either the old or the new pointer, each naming
a complete folder, never a half-written one; leftovers are removed at the next start.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from edge_agent.bundle import MANIFEST_FILE, MODEL_FILE
from edge_agent.errors import BundleError
from edge_agent.paths import state_dir
from edge_agent.signing import SIGNATURE_FILE

POINTER_FILE = "pointer.json"
BUNDLE_FILES = (MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE)
STAGING_PREFIX = ".incoming-"


def default_root() -> Path:
    return state_dir() / "models"


def fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def pointer(self, name: str) -> dict[str, str | None]:
        try:
            return json.loads((self.root / name / POINTER_FILE).read_text())
        except FileNotFoundError:
            return {"current": None, "previous": None}
        except (OSError, ValueError) as exc:
            raise BundleError(f"{self.root / name / POINTER_FILE}: unreadable ({exc})") from None

    def path(self, name: str, version: str) -> Path:
        return self.root / name / version

    def current(self, name: str) -> Path | None:
        version = self.pointer(name)["current"]
        return None if version is None else self.path(name, version)

    def stage(self, name: str) -> Path:
        """A fresh folder to write an incoming bundle into."""
        staging = self.root / name / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        staging.mkdir(parents=True)
        return staging

    def install(self, name: str, version: str, staging: Path) -> Path:
        """Move a complete, verified staging folder to its version folder (atomic rename). The
        same version again is accepted only with the same bytes."""
        for file in BUNDLE_FILES:
            if (staging / file).exists():
                fsync_file(staging / file)
        fsync_dir(staging)
        target = self.path(name, version)
        if target.exists():
            same = all(
                (staging / f).read_bytes() == (target / f).read_bytes()
                for f in (MANIFEST_FILE, MODEL_FILE)
            )
            shutil.rmtree(staging)
            if not same:
                raise BundleError(f"{name} {version} is installed with other bytes; not replaced")
            return target
        os.rename(staging, target)
        fsync_dir(self.root / name)
        return target

    def switch(self, name: str, current: str, previous: str | None) -> None:
        """Point `current` at an installed version, remembering `previous` (atomic)."""
        folder = self.root / name
        temporary = folder / f"{POINTER_FILE}.tmp"
        with temporary.open("w") as handle:
            json.dump({"current": current, "previous": previous}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, folder / POINTER_FILE)
        fsync_dir(folder)

    def seed(self, name: str, version: str, bundle: Path) -> Path:
        """Copy a configured bundle in and make it current (first start, or a newer bundle)."""
        staging = self.stage(name)
        for file in BUNDLE_FILES:
            if (bundle / file).exists():
                shutil.copyfile(bundle / file, staging / file)
        target = self.install(name, version, staging)
        self.switch(name, version, self.pointer(name)["current"])
        return target

    def clean(self, name: str) -> int:
        """Remove staging folders a crash left behind; returns how many."""
        folder = self.root / name
        leftovers = [p for p in folder.glob(f"{STAGING_PREFIX}*") if p.is_dir()]
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        (folder / f"{POINTER_FILE}.tmp").unlink(missing_ok=True)
        return len(leftovers)
