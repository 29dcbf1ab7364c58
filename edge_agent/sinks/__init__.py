"""Event sinks behind one small interface; the MQTT publisher (`edge_agent.mqtt`) is one."""

from edge_agent.sinks.base import Sink
from edge_agent.sinks.jsonl import JsonlSink

__all__ = ["JsonlSink", "Sink"]
