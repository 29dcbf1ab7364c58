"""The agent process: sources feed a bounded queue; the main thread windows, infers and emits.

Lifecycle: SIGTERM/SIGINT stop the sources, drain what is queued within `shutdown_timeout_s`
and exit; SIGHUP reloads the config, and if the new config or any of its bundles is bad the
running pipelines keep serving.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.config import AgentConfig, load_agent_config
from edge_agent.config.sinks import JsonlSinkConfig
from edge_agent.errors import EdgeError
from edge_agent.logs import RateLimiter
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime.model import load_model
from edge_agent.sinks.base import Sink
from edge_agent.sinks.jsonl import JsonlSink
from edge_agent.sources.base import Source
from edge_agent.sources.plugins import build_source
from edge_agent.stream.blocks import SampleBlock

log = logging.getLogger("edge_agent.agent")
MAX_BATCH_BLOCKS = 256  # blocks dispatched between two sink flushes when a backlog is queued


def build_pipelines(config: AgentConfig, sinks: list[Sink]) -> list[ModelPipeline]:
    """Load and verify every bundle; any failure raises before anything is replaced."""
    pipelines = []
    for binding in config.models:
        runner = load_model(
            binding.bundle,
            backend=binding.backend or config.runtime.backend,
            num_threads=config.runtime.num_threads,
            edgetpu=binding.edgetpu,
            edgetpu_fallback=config.runtime.edgetpu_fallback_to_cpu,
        )
        model_id = binding.id or runner.manifest.name
        pipelines.append(
            ModelPipeline(
                config.device_id,
                model_id,
                runner,
                binding.alarm,
                sinks,
                binding.channel_map,
                source=binding.source,
            )
        )
        log.info(
            "model loaded",
            extra={
                "model": model_id,
                "version": runner.manifest.version,
                "backend": runner.backend,
                "source": binding.source,
                "delegate": runner.delegate,
            },
        )
    return pipelines


class Agent:
    def __init__(self, config: AgentConfig, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.limiter = RateLimiter(config.log.repeat_interval_s)
        self.started_at = time.time()
        self.pipelines = build_pipelines(config, sinks=[])
        self.sources: list[Source] = [
            build_source(config, i, self.limiter) for i in range(len(config.sources))
        ]
        self.queue: queue.Queue[SampleBlock] = queue.Queue(maxsize=config.queue_blocks)
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.counters: Counter[str] = Counter()
        self._source_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._commands: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._next_metrics = time.monotonic()
        self.sinks: list[Sink] = []
        self._attach_sinks(config)  # last: an MQTT sink may call back (birth, commands) at once

    # ---- sinks, sequences, birth and commands ----------------------------------------------
    def _build_sinks(self, config: AgentConfig) -> list[Sink]:
        sinks: list[Sink] = []
        for sink in config.sinks:
            if isinstance(sink, JsonlSinkConfig):
                sinks.append(JsonlSink(sink.path, sink.fsync))
            else:
                from edge_agent.mqtt.publisher import MqttPublisher

                assert config.mqtt is not None
                sinks.append(
                    MqttPublisher(sink, config.mqtt, config.device_id, self.birth, self.command)
                )
        return sinks

    def _attach_sinks(self, config: AgentConfig) -> None:
        """Sinks come after the pipelines (the MQTT birth message lists the models)."""
        self.sinks = self._build_sinks(config)
        for pipeline in self.pipelines:
            pipeline.sinks = list(self.sinks)
        # Subscribers de-duplicate on (device, model, seq): continue where the spool left off.
        for pipeline in self.pipelines:
            stored = [s.sequence(pipeline.ref.id) for s in self.sinks if hasattr(s, "sequence")]
            pipeline.seq = max([pipeline.seq, *stored])

    def birth(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "state": "online",
            "device": self.config.device_id,
            "agent_version": __version__,
            "started_at": self.started_at,
            "models": [
                {
                    "id": p.ref.id,
                    "name": p.ref.name,
                    "version": p.ref.version,
                    "sha256": p.ref.sha256,
                    "task": p.runner.manifest.task,
                    "backend": p.runner.backend,
                    **(
                        {"units": p.runner.manifest.output.units}
                        if p.runner.manifest.task == "rul"
                        else {}
                    ),
                }
                for p in self.pipelines
            ],
        }

    def command(self, verb: str, request: dict[str, Any]) -> dict[str, Any]:
        """Inbound command (called from the MQTT thread): answer now, act in the main loop."""
        if verb == "status":
            return {"ok": True, "status": self.birth(), "stats": self.stats()}
        if verb == "reload":
            self.reload_event.set()
            return {"ok": True, "accepted": True}
        if verb == "ack":
            model = request.get("model")
            if model not in {p.ref.id for p in self.pipelines}:
                return {"ok": False, "error": f"unknown model {model!r}"}
            self._commands.put((verb, request))
            return {"ok": True, "accepted": True}
        if verb == "fault":
            source = next((s for s in self.sources if s.id == request.get("source")), None)
            if source is None or not hasattr(source, "set_fault"):
                return {"ok": False, "error": "fault needs the id of a simulator source"}
            try:
                source.set_fault(str(request.get("fault")), float(request.get("severity", 1.0)))
            except (TypeError, ValueError) as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {verb!r}"}

    def _housekeeping(self) -> None:
        while True:
            try:
                verb, request = self._commands.get_nowait()
            except queue.Empty:
                break
            for pipeline in self.pipelines:
                if verb == "ack" and pipeline.ref.id == request.get("model"):
                    pipeline.acknowledge(str(request.get("by", "")))
        now = time.monotonic()
        if now >= self._next_metrics:
            interval = min(
                (
                    s.metrics_interval_s
                    for s in self.config.sinks
                    if hasattr(s, "metrics_interval_s")
                ),
                default=60.0,
            )
            self._next_metrics = now + interval
            for sink in self.sinks:
                if hasattr(sink, "publish_metrics"):
                    sink.publish_metrics(self.stats())

    # ---- sources -------------------------------------------------------------------------
    def _emit(self, block: SampleBlock) -> None:
        while not self._source_stop.is_set():
            try:
                self.queue.put(block, timeout=0.25)
                return
            except queue.Full:
                self.counters["queue_full_waits"] += 1

    def _run_source(self, source: Source) -> None:
        try:
            source.run(self._emit, self._source_stop)
        except EdgeError as exc:
            log.error("source stopped", extra={"source": source.id, "error": str(exc)})
        except Exception:  # a driver bug must not take the agent down silently
            log.exception("source crashed", extra={"source": source.id})

    def _start_sources(self) -> None:
        self._source_stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run_source, args=(s,), name=f"source-{s.id}", daemon=True)
            for s in self.sources
        ]
        for thread in self._threads:
            thread.start()

    def _stop_sources(self, timeout: float) -> None:
        self._source_stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # ---- main loop -----------------------------------------------------------------------
    def dispatch(self, block: SampleBlock) -> None:
        for pipeline in self.pipelines:
            if pipeline.source != block.stream:
                continue
            try:
                pipeline.push(block)
            except Exception:  # unexpected: count and keep serving the other models
                self.counters["pipeline_errors"] += 1
                if self.limiter.allow(f"pipeline:{pipeline.ref.id}"):
                    log.exception("pipeline error", extra={"model": pipeline.ref.id})

    def run(self) -> int:
        log.info("agent started", extra={"device": self.config.device_id, "version": __version__})
        self._start_sources()
        while not self.stop_event.is_set():
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
            self._housekeeping()
            try:
                block = self.queue.get(timeout=0.2)
            except queue.Empty:
                if not any(t.is_alive() for t in self._threads):
                    break  # every source is exhausted (replay finished, simulator duration)
                continue
            self.dispatch(block)
            # Under load, take what else is waiting before one flush: one commit per batch.
            for _ in range(MAX_BATCH_BLOCKS):
                try:
                    self.dispatch(self.queue.get_nowait())
                except queue.Empty:
                    break
            self.flush_sinks()
        self.shutdown()
        return 0

    def flush_sinks(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def shutdown(self) -> None:
        """Stop sources, drain the queue within the timeout, close sinks."""
        timeout = self.config.shutdown_timeout_s
        deadline = time.monotonic() + timeout
        self._stop_sources(timeout / 2)
        while time.monotonic() < deadline:
            try:
                self.dispatch(self.queue.get_nowait())
            except queue.Empty:
                break
        self.flush_sinks()
        dropped = self.queue.qsize()
        for sink in self.sinks:
            sink.close()
        log.info("agent stopped", extra={"stats": self.stats(), "undrained_blocks": dropped})

    def reload(self) -> None:
        if self.config_path is None:
            return
        try:
            config = load_agent_config(self.config_path)
            pipelines = build_pipelines(config, sinks=[])
            limiter = RateLimiter(config.log.repeat_interval_s)
            sources = [build_source(config, i, limiter) for i in range(len(config.sources))]
        except EdgeError as exc:
            log.error("reload failed; previous config keeps running", extra={"error": str(exc)})
            self.counters["reload_failures"] += 1
            return
        previous = {p.ref.id: p.seq for p in self.pipelines}
        for pipeline in pipelines:  # subscribers de-duplicate on seq: never restart it
            pipeline.seq = previous.get(pipeline.ref.id, 0)
        self._stop_sources(self.config.shutdown_timeout_s / 2)
        for block in iter_queue(self.queue):
            self.dispatch(block)
        for sink in self.sinks:
            sink.close()  # close flushes
        self.pipelines = pipelines
        self._attach_sinks(config)
        self.config, self.sources = config, sources
        self.limiter = limiter
        self._start_sources()
        self.counters["reloads"] += 1
        log.info("config reloaded", extra={"models": [p.ref.id for p in pipelines]})

    def stats(self) -> dict[str, Any]:
        return {
            "agent": dict(self.counters),
            "uptime_s": round(time.time() - self.started_at, 3),
            "queue_blocks": self.queue.qsize(),
            "sinks": {type(s).__name__: s.stats() for s in self.sinks if hasattr(s, "stats")},
            "sources": {s.id: dict(s.counters) for s in self.sources},
            "models": {
                p.ref.id: {"results": p.results, "seq": p.seq, **p.windower.counters}
                for p in self.pipelines
            },
        }

    def install_signal_handlers(self) -> None:
        handler: Callable[[int, Any], None] = lambda signum, _frame: self._on_signal(signum)  # noqa: E731
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, handler)

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.reload_event.set()
        else:
            self.stop_event.set()


def iter_queue(q: queue.Queue[SampleBlock]):
    while True:
        try:
            yield q.get_nowait()
        except queue.Empty:
            return
