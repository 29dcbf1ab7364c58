"""The device side never imports TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

PROBE = """
import sys
import numpy as np
from edge_agent.runtime import load_model
runner = load_model(sys.argv[1])
window = np.zeros((runner.manifest.input.window, len(runner.manifest.input.channels)))
runner.predict(runner.manifest.input.pipeline()(window))
import edge_agent.sim.vibration, edge_agent.postprocess
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "tf_keras"})
print("LOADED:" + ",".join(loaded))
"""


def test_loading_and_running_a_bundle_does_not_import_tensorflow(
    tiny_bundles: dict[str, Path],
) -> None:
    """Test that loading, featurising and invoking a model leaves tensorflow/keras unimported."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tiny_bundles["classification"])],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED:\n" in result.stdout + "\n" and "LOADED:tensorflow" not in result.stdout
