"""One model on one stream: windows -> features -> int8 inference -> answer -> alarm -> sinks."""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np

from edge_agent.alarm import AlarmState, Severity, Transition, judge_many, reason
from edge_agent.config.models import AlarmConfig, InputHealthConfig
from edge_agent.errors import ConfigError
from edge_agent.events import AlarmEvent, Event, InputHealthEvent, ModelRef, Result
from edge_agent.frontend.baseline import StreamBaseline
from edge_agent.frontend.spectra import SpectraCache
from edge_agent.manifest import InputSpec
from edge_agent.postprocess import interpret_many, smoother_for
from edge_agent.runtime.model import ModelRunner
from edge_agent.sinks.base import Sink, emit_events
from edge_agent.stream.blocks import SampleBlock
from edge_agent.stream.inputcheck import Checked, InputMonitor
from edge_agent.stream.windower import Window, Windower
from edge_agent.telemetry import Histogram

log = logging.getLogger("edge_agent.pipeline")


class ModelPipeline:
    def __init__(
        self,
        device: str,
        model_id: str,
        runner: ModelRunner,
        alarm: AlarmConfig,
        sinks: Sequence[Sink],
        channel_map: dict[str, str] | None = None,
        source: str | None = None,
        input_health: InputHealthConfig | None = None,
        spectra: SpectraCache | None = None,
    ) -> None:
        """`spectra`: shared by the pipelines on one source, so that models reading the same
        window compute its spectra once (the agent passes one per source)."""
        manifest = runner.manifest
        self.device = device
        self.source = source  # the stream this model reads; None: every block pushed to it
        self.runner = runner
        self.ref = ModelRef(model_id, manifest.name, manifest.version, manifest.model_sha256)
        spec = manifest.input
        self.windower = Windower(
            spec.channels, spec.window, spec.hop, spec.sample_rate_hz, channel_map, spec.max_gap
        )
        self.spectra = spectra if spectra is not None else SpectraCache()
        self.features = spec.pipeline(self.spectra)
        self.baseline = (
            StreamBaseline(spec.baseline, self.windower.source_channels) if spec.baseline else None
        )
        self.smoother = smoother_for(manifest)
        self.alarm_config = alarm
        self.alarm = AlarmState(alarm)
        self.sinks = list(sinks)
        self._outbox: list[Event] = []  # events of the block being processed, in order
        self.monitor = _monitor(manifest.input, input_health or InputHealthConfig(), model_id)
        self.input_problems: Counter[str] = Counter()  # raised conditions, by condition
        self.seq = 0
        self.results = 0
        self._stall: str | None = None  # the kind of stall last warned about
        self.inference_ms = Histogram()  # features + invoke + answer: a window's share of its batch
        self.end_to_end_ms = Histogram()  # block arrival -> result accepted by the sinks

    def push(self, block: SampleBlock, arrived: float | None = None) -> int:
        """Feed samples; emit one result per completed window. Returns the number of results.

        The windows a block completes are inferred as one batch (one invoke() for many when the
        model allows it); results, alarm and input health events then go to the sinks together,
        in the order one window at a time would give. The caller flushes the sinks after a
        batch of blocks (one durable commit per batch). `arrived`: when the block reached the
        agent (time.perf_counter), for end_to_end_ms."""
        self.spectra.new_block(block)  # the other models on this source get the same block
        if self.baseline is not None and self.baseline.fitted is None:
            head, rest = self.baseline.take(block)
            if head is not None:  # windows ending inside the baseline period are not scored
                self.baseline.unscored += len(self.windower.push(head))
            if self.baseline.fitted is not None:
                log.info(
                    f"model {self.ref.id}: baseline fitted on the first "
                    f"{self.baseline.spec.samples} samples of the stream; "
                    f"{self.baseline.unscored} windows before it were not scored",
                    extra={"model": self.ref.id, "stream": self.source},
                )
            if rest is None:
                return 0
            block = rest
        windows = self.windower.push(block)
        if not windows:
            if self.windower.stalled():
                self._warn_stall()
            return 0
        if self._stall is not None:
            self._stall = None
            log.info("windows forming again", extra={"model": self.ref.id})
        reports = self._check_inputs(windows)
        size = self.runner.batch_size  # features of a batch stay in the CPU's cache
        for first in range(0, len(windows), size):
            self._infer(windows[first : first + size], arrived, reports, first)
        self.results += len(windows)
        return len(windows)

    def _check_inputs(self, windows: list[Window]) -> dict[int, Checked]:
        """Input health of a block's windows, checked together (their checks do not depend on
        inference); the checks with something to report, by the window's index."""
        if self.monitor is None:
            return {}
        due = self.monitor.due(len(windows))
        if not due:
            return {}
        checked = self.monitor.check_many([windows[index].values for index in due])
        return {index: one for index, one in zip(due, checked) if one.active is not None}

    def _infer(
        self, windows: list[Window], arrived: float | None, reports: dict[int, Checked], at: int
    ) -> None:
        """Features, inference and answers per batch, then per window its result and alarm.
        `reports`: input health to report, by index among the block's windows; `at`: the
        index of this batch's first window there."""
        manifest, clock = self.runner.manifest, time.perf_counter
        started = clock()
        values: list[np.ndarray] | np.ndarray = [window.values for window in windows]
        if self.baseline is not None:  # elementwise, so stacked windows get each window's bits
            values = self.baseline.apply(np.stack(values))
        model_inputs = self.features.batch(values)
        answers = interpret_many(
            manifest,
            model_inputs,
            self.runner.predict_many(model_inputs),
            self.smoother,
            [window.run for window in windows],
        )
        latency_ms = (clock() - started) * 1000.0 / len(windows)  # each window's share
        device, ref, task, first = self.device, self.ref, manifest.task, self.seq + 1
        outbox = self._outbox
        # Which windows report input health or raise an alarm event is known per batch; the
        # others only get their result (a batch with neither takes no call per window).
        checks = [index - at for index in reports if at <= index < at + len(windows)]
        alarms: dict[int, tuple[Transition, Severity | None]] = {}
        if self.alarm_config.enabled:
            verdicts = judge_many(task, answers, self.alarm_config)
            changes = self.alarm.update_many(verdicts, [window.end for window in windows])
            alarms = {index: (change, severity) for index, change, severity in changes}
        if not checks and not alarms:
            outbox.extend(
                [
                    Result(device, ref, seq, window.start, window.end, task, output, latency_ms)
                    for seq, window, output in zip(itertools.count(first), windows, answers)
                ]
            )
        else:
            for index, (window, output) in enumerate(zip(windows, answers)):
                seq = first + index
                if index in checks:
                    self._report_input(reports[at + index], window, seq - 1)
                outbox.append(
                    Result(device, ref, seq, window.start, window.end, task, output, latency_ms)
                )
                if index in alarms:
                    self._alarm_event(*alarms[index], output, window.end, seq)
        self.seq = first + len(windows) - 1
        self._deliver()
        self.inference_ms.observe_many(latency_ms, len(windows))
        if arrived is not None:  # the whole batch was accepted by the sinks just now
            self.end_to_end_ms.observe_many((clock() - arrived) * 1000.0, len(windows))

    def _report_input(self, checked: Checked, window: Window, seq: int) -> None:
        """The input health events of one checked window; `seq`: the results before its own."""
        state = checked.active
        assert state is not None
        if not checked.changes:  # the first check: replace whatever an earlier run left retained
            self._emit(InputHealthEvent(self.device, self.ref, seq, window.end, state))
        for change in checked.changes:
            what = f"model {self.ref.id}: input channel {change.channel} {change.condition}"
            figures = {"model": self.ref.id, "value": round(change.value, 4), "limit": change.limit}
            if change.state == "raised":
                self.input_problems[change.condition] += 1
                log.warning(what, extra=figures)
            else:
                log.info(f"{what} cleared", extra=figures)
            self._emit(
                InputHealthEvent(
                    self.device,
                    self.ref,
                    seq,
                    window.end,
                    state,
                    {
                        "channel": change.channel,
                        "condition": change.condition,
                        "state": change.state,
                        "value": change.value,
                        "limit": change.limit,
                    },
                )
            )

    def _warn_stall(self) -> None:
        """Say at once why no window forms, once per kind of stall rather than once per block:
        otherwise a replay whose every window is dropped ends silently with zero results."""
        kind = self.windower.stall_kind()
        if kind == self._stall:
            return
        self._stall = kind
        log.warning(
            f"model {self.ref.id}: {self.windower.diagnosis()}",
            extra={"model": self.ref.id, "stream": self.source, "stall": kind},
        )

    def no_output_reason(self) -> str | None:
        """Why samples came in but no result went out, as one sentence; None when results came
        out or no sample arrived (an idle input is a different condition)."""
        if self.results or not self.windower.samples:
            return None
        if self.baseline is not None and self.baseline.fitted is None:
            return self.baseline.progress()
        if self.windower.windows:
            return f"{self.windower.windows} windows formed but no result came out of the model"
        return self.windower.diagnosis()

    def _alarm_event(
        self, change: Transition, severity: Severity | None, output: dict, at: float, seq: int
    ) -> None:
        """The event of an alarm transition that result `seq` caused; `severity`: after it."""
        task = self.runner.manifest.task
        state = "cleared" if change == "cleared" else "raised"
        why = reason(task, output, self.alarm_config) if state == "raised" else "back to normal"
        self._emit(
            AlarmEvent(
                self.device,
                self.ref,
                state,
                severity,
                at,
                why,
                seq,
                {"escalated": True} if change == "escalated" else {},
            )
        )

    def _emit(self, event: Event) -> None:
        """Queue an event; `_deliver` hands what is queued to the sinks in order."""
        self._outbox.append(event)

    def _deliver(self) -> None:
        events, self._outbox = self._outbox, []
        if events:
            for sink in self.sinks:
                emit_events(sink, events)

    def acknowledge(self, by: str) -> bool:
        """An operator saw the alarm: re-publish its state marked acknowledged."""
        if not self.alarm.active:
            return False
        self._emit(
            AlarmEvent(
                self.device,
                self.ref,
                "raised",
                self.alarm.severity,
                self.alarm.since or 0.0,
                "acknowledged",
                self.seq,
                {"acknowledged": True, "acknowledged_by": by},
            )
        )
        self._deliver()
        for sink in self.sinks:
            sink.flush()
        return True


def _monitor(spec: InputSpec, config: InputHealthConfig, model_id: str) -> InputMonitor | None:
    """The model's input checks, or None when switched off or the bundle has no reference."""
    unknown = sorted(set(config.full_scale) - set(spec.channels))
    if unknown:
        raise ConfigError(
            f"model {model_id}: input_health.full_scale names {unknown}, "
            f"not channels of the model {spec.channels}"
        )
    if not config.enabled:
        return None
    if spec.reference is None:
        log.info(
            f"model {model_id}: no input health checks (the bundle carries no training "
            "reference; bundles trained by this version do)"
        )
        return None
    return InputMonitor(spec.channels, spec.reference, config, spec.window, spec.hop)
