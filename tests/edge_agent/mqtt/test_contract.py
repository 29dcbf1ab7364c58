"""Real payloads match the published MQTT contract, and the committed JSON Schemas are current."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.config.models import AlarmConfig
from edge_agent.events import AlarmEvent, InputHealthEvent, Result
from edge_agent.mqtt.contract import SCHEMAS, AlarmPayload, InputHealthPayload, ResultPayload
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime import load_model
from edge_agent.sim.vibration import CHANNELS, MachineConditions, generate
from edge_agent.stream.blocks import SampleBlock
from tests.conftest import REPO_ROOT, ListSink


@pytest.mark.parametrize("bundle", ["vibration-fault", "vibration-anomaly", "cmapss-fd001-rul"])
def test_result_and_alarm_payloads_validate(bundle: str) -> None:
    """Test that each task's result, alarm and input health payloads validate against the
    contract."""
    runner = load_model(REPO_ROOT / "models" / bundle)
    spec = runner.manifest.input
    sink = ListSink()
    alarm = AlarmConfig(raise_count=1, window_count=1, rul_below=1000.0)
    pipeline = ModelPipeline("dev", runner.manifest.name, runner, alarm, [sink])
    n = spec.window + spec.hop * 3
    if spec.sample_rate_hz:
        values = generate(MachineConditions(fault="looseness"), n, spec.sample_rate_hz).astype(
            float
        )
        block = SampleBlock("s", CHANNELS, values, 1.7e9, rate_hz=spec.sample_rate_hz)
    else:
        values = np.asarray(spec.features[0].mean) + np.zeros((n, len(spec.channels)))
        block = SampleBlock(
            "s", tuple(spec.channels), values, 1.7e9, timestamps=1.7e9 + np.arange(n, dtype=float)
        )
    pipeline.push(block)
    results = [e for e in sink.events if isinstance(e, Result)]
    alarms = [e for e in sink.events if isinstance(e, AlarmEvent)]
    inputs = [e for e in sink.events if isinstance(e, InputHealthEvent)]
    assert len(results) == 4 and alarms and inputs
    for event in results:
        ResultPayload.model_validate(event.payload(1.7e9 + 10))
    for event in alarms:
        AlarmPayload.model_validate(event.payload(None))
    for event in inputs:
        InputHealthPayload.model_validate(event.payload(None))


def test_committed_schemas_are_current(tmp_path: Path) -> None:
    """Test that docs/schemas/*.v1.schema.json equal what edge_agent.mqtt.contract exports."""
    from edge_agent.mqtt.contract import write_schemas

    write_schemas(tmp_path)
    for name in SCHEMAS:
        file = f"{name}.v1.schema.json"
        committed = json.loads((REPO_ROOT / "docs/schemas" / file).read_text())
        assert committed == json.loads((tmp_path / file).read_text()), file


TASK_FIELDS = {
    "classification": {
        "label": "imbalance",
        "confidence": 0.9,
        "probabilities": {"healthy": 0.1, "imbalance": 0.9},
    },
    "anomaly": {"score": 0.7, "threshold": 0.45, "is_anomaly": True},
    "rul": {"rul": 87.5, "units": "cycles"},
}


def _result(task: str, **fields) -> dict:
    """A result payload as the agent publishes it, with the task's own fields."""
    return {
        "schema_version": 1,
        "type": "result",
        "device": "rig1",
        "model": {"id": "m", "name": "m", "version": "1.0.0", "sha256": "0" * 64},
        "seq": 1,
        "window": {"start": 1.7e9, "end": 1.7e9 + 0.32},
        "published_at": 1.7e9 + 1,
        "task": task,
        **fields,
        "latency_ms": 2.5,
        "historical": False,
    }


def _refusal(payload: dict) -> str:
    """The messages (not the echoed input) of the ValidationError that `payload` must raise."""
    with pytest.raises(ValidationError) as caught:
        ResultPayload.model_validate(payload)
    return " ".join(error["msg"] for error in caught.value.errors())


@pytest.mark.parametrize("task", list(TASK_FIELDS))
def test_result_payload_requires_the_fields_of_its_task(task: str) -> None:
    """Test that a result missing (or nulling) any field its task answers with is refused."""
    ResultPayload.model_validate(_result(task, **TASK_FIELDS[task]))
    for missing in TASK_FIELDS[task]:
        fields = {k: v for k, v in TASK_FIELDS[task].items() if k != missing}
        assert missing in _refusal(_result(task, **fields))
        assert missing in _refusal(_result(task, **fields, **{missing: None}))


@pytest.mark.parametrize("task", list(TASK_FIELDS))
def test_result_payload_refuses_the_fields_of_another_task(task: str) -> None:
    """Test that a result carrying another task's answer (a RUL on a classifier...) is refused."""
    for other, foreign in TASK_FIELDS.items():
        if other != task:
            for name, value in foreign.items():
                assert name in _refusal(_result(task, **TASK_FIELDS[task], **{name: value}))


@pytest.mark.parametrize("task", list(TASK_FIELDS))
def test_raw_score_is_an_optional_anomaly_field(task: str) -> None:
    """Test that an anomaly result may carry raw_score (its unsmoothed score) or not, and that
    any other task's result carrying it is refused."""
    if task == "anomaly":
        ResultPayload.model_validate(_result(task, **TASK_FIELDS[task]))
        payload = ResultPayload.model_validate(_result(task, **TASK_FIELDS[task], raw_score=0.1))
        assert payload.raw_score == 0.1
    else:
        assert "raw_score" in _refusal(_result(task, **TASK_FIELDS[task], raw_score=0.1))
