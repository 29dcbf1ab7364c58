"""A system clock stepped an hour forward and back (NTP at boot on a Pi without a real-time
clock): the spool's age limit and the "not from the future" check keep working, and the agent
counts the step. The system clock of a shared test machine cannot be stepped, so these tests
give the steady clock a wall-time source they step; everything else is real."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from edge_agent.agent import Agent
from edge_agent.clock import SteadyWall
from edge_agent.config import load_agent_config
from edge_agent.mqtt.spool import PRIORITY_ROUTINE, Spool
from edge_agent.sources import payloads
from edge_agent.sources.payloads import PayloadError, parse
from tests.conftest import agent_config

HOUR = 3600.0


class SteppedWall:
    """The real wall clock plus an offset the test changes, like `date -s` would."""

    def __init__(self) -> None:
        import time

        self.offset = 0.0
        self._time = time.time

    def __call__(self) -> float:
        return self._time() + self.offset


def test_steady_clock_ignores_steps_both_ways() -> None:
    """Test that steady() keeps real time while the wall clock jumps +1 h and -1 h, and that
    stepped() reports each step."""
    wall = SteppedWall()
    clock = SteadyWall(wall)
    before = clock.steady()
    wall.offset = HOUR
    assert clock.stepped() == pytest.approx(HOUR, abs=1)
    assert clock.steady() - before < 1 and clock.latest() == pytest.approx(wall(), abs=0.1)
    wall.offset = -HOUR
    assert clock.stepped() == pytest.approx(-HOUR, abs=1)
    assert clock.latest() == pytest.approx(clock.steady(), abs=0.1)


def test_spool_is_not_purged_by_a_clock_step(tmp_path: Path) -> None:
    """Test that spooled messages survive a +1 h step with a 30 min age limit, and that a
    message really older than the limit still expires."""
    wall = SteppedWall()
    spool = Spool(tmp_path / "s.db", max_age_s=HOUR / 2, clock=SteadyWall(wall))
    for _ in range(3):
        spool.put("t", b"x" * 10, 1, False, PRIORITY_ROUTINE)
    spool.commit()
    wall.offset = HOUR
    spool._next_expiry = 0.0  # expiry runs at most once a second; do not wait for that here
    spool.put("t", b"y", 1, False, PRIORITY_ROUTINE)
    spool.commit()
    assert spool.count == 4 and spool.counters["dropped_expired"] == 0
    spool._db.execute("UPDATE messages SET created = created - ? WHERE id = 1", (HOUR,))
    spool._next_expiry = 0.0
    spool.put("t", b"z", 1, False, PRIORITY_ROUTINE)
    spool.commit()
    assert spool.counters["dropped_expired"] == 1 and spool.count == 4


def test_sensor_data_is_not_rejected_when_the_agent_clock_steps_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Test that a row stamped with the real time is accepted after the agent's clock was
    stepped back an hour, while a row ten minutes in the real future is still refused."""
    wall = SteppedWall()
    clock = SteadyWall(wall)
    monkeypatch.setattr(payloads, "CLOCK", clock)
    wall.offset = -HOUR
    now = wall() + HOUR
    assert len(parse("s", orjson.dumps({"ts": now, "a": 1.0}))) == 1
    with pytest.raises(PayloadError, match="future_timestamp"):
        parse("s", orjson.dumps({"ts": now + 600, "a": 1.0}))


def test_agent_counts_and_logs_a_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Test that the supervisor counts a step of the system clock once and logs by how much."""
    from edge_agent import agent as agent_module

    wall = SteppedWall()
    monkeypatch.setattr(agent_module, "CLOCK", SteadyWall(wall))
    config = agent_config(
        tmp_path,
        "clock1",
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true',
        [("vibration-fault", "motor")],
    )
    agent = Agent(load_agent_config(config))
    agent.supervise()
    wall.offset = HOUR
    agent.supervise()
    agent.supervise()
    wall.offset = 0.0
    agent.supervise()
    assert agent.counters["clock_steps"] == 2
    steps = [r for r in caplog.records if r.getMessage() == "system clock stepped"]
    assert [round(r.by_s / HOUR) for r in steps] == [1, -1]  # type: ignore[attr-defined]
