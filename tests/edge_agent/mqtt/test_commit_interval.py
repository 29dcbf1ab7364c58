"""`commit_interval_s`: results are written to the spool at most once per interval (fewer
writes to an SD card), alarms at once, and a graceful stop still delivers everything."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

from tests.conftest import Broker, Subscriber, agent_config, read_jsonl, start_agent, wait_until

DEVICE = "batch1"
INTERVAL = 3.0


def test_results_wait_for_the_interval_alarms_do_not(broker: Broker, tmp_path: Path) -> None:
    """Test that with commit_interval_s = 3 results reach the subscriber in batches about 3 s
    apart, that an alarm arrives within a second of being raised, and that SIGTERM delivers
    every result produced."""
    config = agent_config(
        tmp_path,
        DEVICE,
        '[[sources]]\nkind = "simulator"\nid = "motor"\nrealtime = true\n'
        'schedule = [{ at_s = 4.0, fault = "bearing_outer" }]',
        [("vibration-fault", "motor")],
        broker_port=broker.port,
        mqtt_sink=True,
        sink_options=f"commit_interval_s = {INTERVAL}",
        extra=f'[[sinks]]\nkind = "jsonl"\npath = "{tmp_path / "local.jsonl"}"',
    )
    arrivals: list[float] = []
    sub = Subscriber(broker, f"pdm/{DEVICE}/#")
    original = sub.client.on_message

    def timed(client, userdata, message) -> None:  # when each message reached the subscriber
        if message.topic.endswith("/result"):
            arrivals.append(time.monotonic())
        original(client, userdata, message)

    sub.client.on_message = timed
    agent = start_agent(config)
    try:
        local = tmp_path / "local.jsonl"
        wait_until(lambda: any(e["type"] == "alarm" for e in read_jsonl(local)), 40, "an alarm")
        raised_at = time.monotonic()
        wait_until(lambda: sub.payloads("/vibration-fault/alarm"), 10, "the alarm at the broker")
        alarm_delay = time.monotonic() - raised_at
        wait_until(lambda: len(arrivals) >= 40, 40, "several batches of results")
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=30)
    finally:
        agent.kill()
        sub.close()
    assert agent.returncode == 0, stderr[-2000:]
    assert alarm_delay < 1.0, alarm_delay
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    # Produced every 0.16 s, received in bursts: a pause of 0.8 x the interval only comes from
    # batching (an alarm commits early, so not every pause is a whole interval).
    assert gaps[-1] > 0.8 * INTERVAL, gaps[-5:]
    assert len([g for g in gaps if g > 1.0]) < len(arrivals) / 5, gaps[-10:]
    produced = {e["seq"] for e in read_jsonl(tmp_path / "local.jsonl") if e["type"] == "result"}
    assert produced == {p["seq"] for p in sub.payloads("/vibration-fault/result")}
