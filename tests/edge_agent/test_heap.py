"""The collector's full passes skip what the agent holds from start; replaced objects are still
freed."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

from edge_agent import heap
from edge_agent.agent import Agent
from edge_agent.config import load_agent_config
from tests.conftest import agent_config, wait_until


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settle_freezes_what_lives_and_frees_cycles_it_froze_before() -> None:
    """Test that settle() takes existing objects out of the collector's passes, and that a
    second settle() frees a cycle frozen by the first once nothing refers to it."""
    gc.unfreeze()
    node = _Node()
    alive = weakref.ref(node)
    heap.settle()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert alive() is not None  # frozen: a plain collection does not see it
    heap.settle()
    assert alive() is None


def test_the_agent_freezes_its_startup_objects_before_it_reports_ready(tmp_path: Path) -> None:
    """Test that a running agent has settled its heap once serving starts."""
    gc.unfreeze()
    config = agent_config(
        tmp_path,
        "heap",
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true\nblock_samples = 2048',
        [("vibration-fault", "motor")],
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{tmp_path / "out.jsonl"}"',
    )
    agent = Agent(load_agent_config(config))
    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        wait_until(lambda: gc.get_freeze_count() > 0, 30.0, "the agent to settle its heap")
    finally:
        agent.stop_event.set()
        thread.join(timeout=20)
    gc.unfreeze()
