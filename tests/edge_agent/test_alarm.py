"""Alarm state machine: debounce, hysteresis, severity."""

from __future__ import annotations

import random

from edge_agent.alarm import AlarmState, judge, reason
from edge_agent.config.models import AlarmConfig

CONFIG = AlarmConfig(raise_count=3, window_count=5, clear_count=1)


def _feed(state: AlarmState, verdicts: str) -> list[str | None]:
    """Feed a string of verdicts: '1' abnormal warning, '2' abnormal critical, '0' normal."""
    out = []
    for i, v in enumerate(verdicts):
        out.append(state.update(v != "0", "critical" if v == "2" else "warning", float(i)))
    return out


def test_one_noisy_window_never_raises() -> None:
    """Test that isolated abnormal windows (fewer than 3 of 5) do not raise."""
    assert set(_feed(AlarmState(CONFIG), "0100010001000")) == {None}


def test_raises_on_three_of_five_and_clears_with_hysteresis() -> None:
    """Test raise on the 3rd abnormal of 5, no clear until at most 1 of the last 5 is abnormal."""
    state = AlarmState(CONFIG)
    assert _feed(state, "10101")[4] == "raised" and state.since == 4.0
    # Then two normal windows: last five = 1,0,1,0,0 -> 2 abnormal, still raised;
    # a third: 0,1,0,0,0 -> 1 abnormal -> cleared.
    assert _feed(state, "000") == [None, None, "cleared"]
    assert state.active is False


def test_flapping_signal_does_not_spam() -> None:
    """Test that alternating windows raise once and then hold, instead of toggling."""
    changes = _feed(AlarmState(CONFIG), "1010101010101010")
    assert [c for c in changes if c] == ["raised"]


def test_escalates_to_critical_once() -> None:
    """Test that a warning alarm escalates when a critical window arrives, and only once."""
    changes = _feed(AlarmState(CONFIG), "111222")
    assert [c for c in changes if c] == ["raised", "escalated"]


def test_judge_per_task() -> None:
    """Test the abnormal verdict and severity for each task's output."""
    assert judge("classification", {"label": "healthy"}, CONFIG)[0] is False
    assert judge("classification", {"label": "looseness"}, CONFIG) == (True, "warning")
    assert judge("anomaly", {"score": 3.0, "threshold": 1.0}, CONFIG) == (True, "critical")
    assert judge("anomaly", {"score": 1.5, "threshold": 1.0}, CONFIG) == (True, "warning")
    assert judge("rul", {"rul": 5.0}, CONFIG) == (True, "critical")
    assert judge("rul", {"rul": 80.0}, CONFIG)[0] is False
    assert reason("anomaly", {"score": 3.0, "threshold": 1.0}, CONFIG) == "score 3 > threshold 1"


def test_consecutive_rule_needs_an_unbroken_run() -> None:
    """Test that rule 'consecutive' raises only after raise_count abnormal windows in a row,
    where n_of_m already raises on the same windows spread out."""
    config = AlarmConfig(rule="consecutive", raise_count=3, window_count=5, clear_count=1)
    assert set(_feed(AlarmState(config), "1101101101")) == {None}
    assert set(_feed(AlarmState(CONFIG), "11011")) == {None, "raised"}
    changes = _feed(AlarmState(config), "1101110000")
    assert [(i, c) for i, c in enumerate(changes) if c] == [(5, "raised"), (9, "cleared")]


def test_batched_updates_give_the_transitions_of_one_window_at_a_time() -> None:
    """Test that update_many, fed random batches, gives the same transitions, severities and
    counts as update() window by window, for both rules (fast paths included)."""
    rng = random.Random(7)
    for config in (CONFIG, AlarmConfig(rule="consecutive", raise_count=2, window_count=4)):
        one, many = AlarmState(config), AlarmState(config)
        at = 0
        for _ in range(400):
            # runs of one kind hit the fast paths; mixed batches the general loop
            kind = rng.choice(["0", "1", "2", "012"])
            batch = "".join(rng.choice(kind) for _ in range(rng.randint(1, 12)))
            verdicts = [(v != "0", "critical" if v == "2" else "warning") for v in batch]
            ats = [float(at + i) for i in range(len(batch))]
            expected = []
            for i, ((bad, severity), t) in enumerate(zip(verdicts, ats)):
                change = one.update(bad, severity, t)  # type: ignore[arg-type]
                if change is not None:
                    expected.append((i, change, one.severity))
            assert many.update_many(verdicts, ats) == expected  # type: ignore[arg-type]
            state = (many.active, many.severity, many.since, many.abnormal_count, many.streak)
            assert state == (one.active, one.severity, one.since, one.abnormal_count, one.streak)
            assert list(many.recent) == list(one.recent)
            at += len(batch)
