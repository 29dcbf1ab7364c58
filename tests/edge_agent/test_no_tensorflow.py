"""The device side never imports TensorFlow: not the runtime, and not any module of `edge_agent`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

FORBIDDEN = ("tensorflow", "keras", "tf_keras")

# Runs in a fresh interpreter, so nothing a test imported earlier can hide or cause an import.
# pkgutil.walk_packages skips folders without __init__.py (namespace packages), so the probe
# also imports every .py file under edge_agent/ by path-derived name: no subtree can be missed.
PROBE = """
import importlib, json, pkgutil, sys
from pathlib import Path

import numpy as np

import edge_agent
from edge_agent.runtime import load_model

root = Path(edge_agent.__file__).parent
walked = {m.name for m in pkgutil.walk_packages(edge_agent.__path__, "edge_agent.")}
on_disk = set()
for path in root.rglob("*.py"):
    parts = path.relative_to(root.parent).with_suffix("").parts
    on_disk.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
imported = sorted(walked | on_disk)
for name in imported:
    importlib.import_module(name)
runner = load_model(sys.argv[1])
window = np.zeros((runner.manifest.input.window, len(runner.manifest.input.channels)))
runner.predict(runner.manifest.input.pipeline()(window))
print(json.dumps({
    "imported": imported,
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN),
}))
""".replace("FORBIDDEN", repr(FORBIDDEN))


def test_importing_every_edge_agent_module_does_not_import_tensorflow(
    tiny_bundles: dict[str, Path],
) -> None:
    """Test that importing every edge_agent module and running a bundle loads no TensorFlow."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tiny_bundles["classification"])],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # The walk really reached the agent, CLI, sinks, sources and the MQTT side.
    for module in (
        "edge_agent.agent",
        "edge_agent.cli",
        "edge_agent.sinks.jsonl",
        "edge_agent.sources.mqtt",
        "edge_agent.sources.replay",
        "edge_agent.mqtt.publisher",
        "edge_agent.mqtt.watch",
    ):
        assert module in report["imported"], module
    assert report["loaded"] == [], report["loaded"]
