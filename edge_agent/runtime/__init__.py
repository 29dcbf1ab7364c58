"""Inference backends behind one float-in, float-out interface."""

from edge_agent.runtime.backends import BACKENDS, resolve_interpreter
from edge_agent.runtime.model import ModelRunner, load_model

__all__ = ["BACKENDS", "ModelRunner", "load_model", "resolve_interpreter"]
