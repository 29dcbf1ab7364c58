"""Event sinks behind one small interface; the MQTT publisher is another sink."""

from edge_agent.sinks.base import Sink
from edge_agent.sinks.jsonl import JsonlSink

__all__ = ["JsonlSink", "Sink"]
