"""Finding a TFLite interpreter: ai-edge-litert first, then tflite-runtime, then TensorFlow Lite."""

from __future__ import annotations

import importlib
from typing import Any, Literal

from edge_agent.errors import RuntimeBackendError

BackendName = Literal["ai_edge_litert", "tflite_runtime", "tensorflow"]
BackendChoice = Literal["auto", "ai_edge_litert", "tflite_runtime", "tensorflow"]
BACKENDS: tuple[BackendName, ...] = ("ai_edge_litert", "tflite_runtime", "tensorflow")
# (module, attribute path to the Interpreter class inside it)
_LOCATIONS = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tensorflow": ("tensorflow", "lite.Interpreter"),
}
_INSTALL_HINT = {
    "ai_edge_litert": "pip install 'edge-pdm[agent]'",
    "tflite_runtime": "pip install 'edge-pdm[tflite]'",
    "tensorflow": "pip install tensorflow",
}


def _import(name: BackendName) -> Any:
    module_name, attribute = _LOCATIONS[name]
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def resolve_interpreter(choice: BackendChoice = "auto") -> tuple[BackendName, Any]:
    """Return (backend name, Interpreter class) for the forced backend or the first that imports."""
    candidates = BACKENDS if choice == "auto" else (choice,)
    failures = []
    for name in candidates:
        try:
            return name, _import(name)
        except (ImportError, AttributeError) as exc:
            failures.append(f"{name} ({exc}; install with {_INSTALL_HINT[name]})")
    raise RuntimeBackendError("no usable TFLite interpreter: " + "; ".join(failures))
