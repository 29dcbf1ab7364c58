"""Inference backends behind one float-in, float-out interface."""

from edge_agent.runtime.backends import BACKEND_CHOICES, resolve_interpreter
from edge_agent.runtime.model import ModelRunner, load_model

__all__ = ["BACKEND_CHOICES", "ModelRunner", "load_model", "resolve_interpreter"]
