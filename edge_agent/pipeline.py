"""One model on one stream: windows -> features -> int8 inference -> answer -> alarm -> sinks."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence

from edge_agent.alarm import AlarmState, judge, reason
from edge_agent.config.models import AlarmConfig, InputHealthConfig
from edge_agent.errors import ConfigError
from edge_agent.events import AlarmEvent, Event, InputHealthEvent, ModelRef, Result
from edge_agent.frontend.baseline import StreamBaseline
from edge_agent.frontend.spectra import SpectraCache
from edge_agent.manifest import InputSpec
from edge_agent.postprocess import interpret, smoother_for
from edge_agent.runtime.model import ModelRunner
from edge_agent.sinks.base import Sink
from edge_agent.stream.blocks import SampleBlock
from edge_agent.stream.inputcheck import InputMonitor
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
        self.monitor = _monitor(manifest.input, input_health or InputHealthConfig(), model_id)
        self.input_problems: Counter[str] = Counter()  # raised conditions, by condition
        self.seq = 0
        self.results = 0
        self._stall: str | None = None  # the kind of stall last warned about
        self.inference_ms = Histogram()  # features + invoke + interpretation, per window
        self.end_to_end_ms = Histogram()  # block arrival -> result accepted by the sinks

    def push(self, block: SampleBlock, arrived: float | None = None) -> int:
        """Feed samples; emit one result per completed window. Returns the number of results.

        The caller flushes the sinks after a batch of blocks (one durable commit per batch).
        `arrived`: when the block reached the agent (time.perf_counter), for end_to_end_ms."""
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
        manifest = self.runner.manifest
        features, predict, task = self.features, self.runner.predict, manifest.task
        alarm_enabled, clock = self.alarm_config.enabled, time.perf_counter
        monitor, baseline, smoother = self.monitor, self.baseline, self.smoother
        inference, end_to_end = self.inference_ms.observe, self.end_to_end_ms.observe
        for window in windows:
            if monitor is not None:
                self._check_input(monitor, window)
            started = clock()
            values = window.values if baseline is None else baseline.apply(window.values)
            model_input = features(values)
            output = interpret(manifest, model_input, predict(model_input), smoother, window.run)
            latency_ms = (clock() - started) * 1000.0
            inference(latency_ms)
            self.seq += 1
            self._emit(
                Result(
                    self.device,
                    self.ref,
                    self.seq,
                    window.start,
                    window.end,
                    task,
                    output,
                    latency_ms,
                )
            )
            if arrived is not None:
                end_to_end((clock() - arrived) * 1000.0)
            if alarm_enabled:
                self._update_alarm(output, window.end)
        self.results += len(windows)
        return len(windows)

    def _check_input(self, monitor: InputMonitor, window: Window) -> None:
        changes = monitor.check(window.values)
        if not changes and monitor.checked != 1:
            return
        state = monitor.active()
        if not changes:  # the first check: replace whatever an earlier run left retained
            self._emit(InputHealthEvent(self.device, self.ref, self.seq, window.end, state))
        for change in changes:
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
                    self.seq,
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

    def _update_alarm(self, output: dict, at: float) -> None:
        task = self.runner.manifest.task
        abnormal, severity = judge(task, output, self.alarm_config)
        change = self.alarm.update(abnormal, severity, at)
        if change is None:
            return
        state = "cleared" if change == "cleared" else "raised"
        why = reason(task, output, self.alarm_config) if state == "raised" else "back to normal"
        self._emit(
            AlarmEvent(
                self.device,
                self.ref,
                state,
                self.alarm.severity,
                at,
                why,
                self.seq,
                {"escalated": True} if change == "escalated" else {},
            )
        )

    def _emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)

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
