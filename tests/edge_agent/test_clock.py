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


def test_live_stream_through_an_hour_forward_and_back_loses_nothing(
    durable_broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cmapss_dir: Path
) -> None:
    """Test a live run whose system clock steps +1 h then back during a broker outage, with a
    driver stamping rows by that clock and a 15 min spool age limit: windows keep forming after
    each step (counted as a jump and a step back), both steps are counted, nothing spooled is
    purged by age, and every result reaches a subscriber once the broker is back."""
    from edge_agent.clock import CLOCK
    from edge_agent.mqtt.publisher import MqttPublisher
    from tests.conftest import Subscriber, agent_thread, register_plugin, wait_until

    wall = SteppedWall()
    monkeypatch.setattr(CLOCK, "wall", wall)
    register_plugin(
        monkeypatch, "wall-rows", "tests.edge_agent.sources.fake_driver:make_wall_stamped"
    )
    sensors = [2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21]
    source = (
        '[[sources]]\nkind = "plugin"\nid = "engine"\nplugin = "wall-rows"\n'
        f'options = {{ path = "{cmapss_dir / "test_FD001.txt"}", period_s = 0.005, '
        f"columns = {[s + 4 for s in sensors]}, names = {[f's{s}' for s in sensors]} }}"
    )
    config = agent_config(
        tmp_path,
        "clock2",
        source.replace("'", '"'),
        [("cmapss-fd001-rul", "engine")],
        broker_port=durable_broker.port,
        mqtt_sink=True,
        sink_options="spool_max_age_h = 0.25",
    )
    historian = Subscriber(durable_broker, "pdm/clock2/+/result", client_id="historian")
    agent = Agent(load_agent_config(config))
    thread = agent_thread(agent)
    pipeline = agent.pipelines[0]
    publisher = next(s for s in agent.sinks if isinstance(s, MqttPublisher))
    try:
        wait_until(lambda: len(historian.payloads("/result")) >= 20, 30, "results flowing")
        durable_broker.stop()
        wait_until(lambda: publisher.spool.live_count >= 20, 30, "results spooled offline")

        wall.offset = HOUR
        mark = pipeline.results
        wait_until(
            lambda: (
                pipeline.windower.counters["time_jump_reset"] == 1
                and pipeline.results >= mark + 50
                and agent.counters["clock_steps"] == 1
            ),
            30,
            "windows after the step forward",
        )
        wall.offset = 0.0
        mark = pipeline.results
        wait_until(
            lambda: (
                pipeline.windower.counters["clock_step_back"] == 1
                and pipeline.results >= mark + 50
                and agent.counters["clock_steps"] == 2
            ),
            30,
            "windows after the step back",
        )
        assert publisher.spool.counters["dropped_expired"] == 0

        durable_broker.start()
        expected = set(range(1, pipeline.seq + 1))
        wait_until(
            lambda: {p["seq"] for p in historian.payloads("/result")} >= expected,
            60,
            "every result delivered after the outage",
        )
    finally:
        agent.stop_event.set()
        thread.join(20)
        historian.close()
    assert publisher.spool.counters["dropped_expired"] == 0
    assert pipeline.windower.counters["out_of_order"] <= 2  # rows before the step back is believed
