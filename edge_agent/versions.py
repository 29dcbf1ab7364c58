"""Anti-rollback: the highest bundle version a device has accepted, per model name.

Kept as a small JSON file in the state directory, so a restart cannot be used to slip an older
(perhaps vulnerable) signed model back in. The same version is accepted again only with the
same model bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edge_agent.errors import BundleError, ConfigError
from edge_agent.manifest import Manifest, version_key
from edge_agent.paths import state_dir


def default_path() -> Path:
    return state_dir() / "models" / "accepted.json"


class AcceptedVersions:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.accepted: dict[str, dict[str, str]] = json.loads(path.read_text())
        except FileNotFoundError:
            self.accepted = {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the accepted versions ({exc})") from None

    def check(self, manifest: Manifest, where: Path) -> None:
        """Refuse a version lower than the accepted one, or equal to it with other bytes."""
        seen = self.accepted.get(manifest.name)
        if seen is None:
            return
        new, old = version_key(manifest.version), version_key(seen["version"])
        if new < old or (new == old and manifest.model_sha256 != seen["sha256"]):
            raise BundleError(
                f"{where}: {manifest.name} {manifest.version} does not go past the accepted "
                f"{seen['version']} (anti-rollback; an operator's rollback command can go back)"
            )

    def record(self, manifests: list[Manifest]) -> None:
        """Remember these as accepted (atomically: write, fsync, rename)."""
        changed = False
        for manifest in manifests:
            entry = {"version": manifest.version, "sha256": manifest.model_sha256}
            seen = self.accepted.get(manifest.name)
            if seen is None or version_key(manifest.version) > version_key(seen["version"]):
                self.accepted[manifest.name] = entry
                changed = True
        if not changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as handle:
            json.dump(self.accepted, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
