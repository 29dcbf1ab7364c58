"""Where the agent keeps state (the spool, later installed models), and the writability check
that `check-config` and start-up share."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edge_agent.errors import ConfigError

APP = "edge-agent"


def state_dir() -> Path:
    """$STATE_DIRECTORY under systemd (its first entry), /var/lib/edge-agent for root, else the
    XDG state directory, so a normal user never needs root to try the agent."""
    given = os.environ.get("STATE_DIRECTORY")
    if given:
        return Path(given.split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib") / APP
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / APP


def ensure_writable(directory: Path, what: str) -> Path:
    """Create `directory` if needed and prove a file can be written there; one ConfigError
    naming the directory and the reason otherwise."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{what} {directory} is not writable ({exc.strerror or exc})") from None
    return directory
