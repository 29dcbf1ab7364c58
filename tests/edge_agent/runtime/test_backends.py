"""Interpreter backends: preference order, forced choice, and identical answers across them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import RuntimeBackendError
from edge_agent.runtime import load_model, resolve_interpreter


def test_auto_prefers_ai_edge_litert() -> None:
    """Test that automatic selection picks ai-edge-litert when it is installed."""
    name, _ = resolve_interpreter("auto")
    assert name == "ai_edge_litert"


@pytest.mark.skipif(
    importlib.util.find_spec("tflite_runtime") is not None,
    reason="tflite-runtime is installed here, so it cannot be shown missing",
)
def test_forced_missing_backend_says_how_to_install() -> None:
    """Test that forcing an absent backend gives a readable error with the install command."""
    with pytest.raises(RuntimeBackendError, match=r"tflite_runtime .*edge-pdm\[tflite\]"):
        resolve_interpreter("tflite_runtime")


def test_litert_and_tensorflow_agree(tiny_bundles: dict[str, Path]) -> None:
    """Test that LiteRT and TensorFlow Lite give outputs within one quantisation step."""
    for path in tiny_bundles.values():
        litert = load_model(path, backend="ai_edge_litert")
        tensorflow = load_model(path, backend="tensorflow")
        assert tensorflow.backend == "tensorflow"
        features = np.asarray(litert.manifest.golden.input, dtype=np.float32)
        step = litert.output_spec.scale
        assert (
            np.max(np.abs(litert.predict(features) - tensorflow.predict(features))) <= step * 1.01
        )


def test_legacy_backend_under_numpy_2_is_refused_in_one_sentence() -> None:
    """Test that an installed tflite-runtime beside numpy 2 (a later install of another extra
    upgraded it) is refused with the fix, before its import prints a page of warnings; numpy 1
    or an absent tflite-runtime is not refused."""
    from edge_agent.runtime.backends import wrong_environment

    problem = wrong_environment("tflite_runtime", "2.1.3", installed=True)
    assert problem is not None and "numpy<2" in problem and ".venv-legacy" in problem
    assert wrong_environment("tflite_runtime", "1.26.4", installed=True) is None
    assert wrong_environment("tflite_runtime", "2.1.3", installed=False) is None
    assert wrong_environment("ai_edge_litert", "2.1.3", installed=True) is None
