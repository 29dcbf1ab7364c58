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
from edge_agent.config.sinks import JsonlSink as JsonlSinkConfig
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


def build_sinks(config: AgentConfig) -> list[Sink]:
    sinks: list[Sink] = []
    for sink in config.sinks:
        if isinstance(sink, JsonlSinkConfig):
            sinks.append(JsonlSink(sink.path, sink.fsync))
    return sinks


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
                config.device_id, model_id, runner, binding.alarm, sinks, binding.channel_map
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
        self.sinks = build_sinks(config)
        self.pipelines = build_pipelines(config, self.sinks)
        self.sources: list[Source] = [
            build_source(config, i, self.limiter) for i in range(len(config.sources))
        ]
        self.queue: queue.Queue[SampleBlock] = queue.Queue(maxsize=config.queue_blocks)
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.counters: Counter[str] = Counter()
        self._source_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started = threading.Event()

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
        for pipeline, binding in zip(self.pipelines, self.config.models):
            if binding.source != block.stream:
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
        self.started.set()
        while not self.stop_event.is_set():
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
            try:
                block = self.queue.get(timeout=0.2)
            except queue.Empty:
                if not any(t.is_alive() for t in self._threads):
                    break  # every source is exhausted (replay finished, simulator duration)
                continue
            self.dispatch(block)
        self.shutdown()
        return 0

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
        dropped = self.queue.qsize()
        for sink in self.sinks:
            sink.close()
        log.info("agent stopped", extra={"stats": self.stats(), "undrained_blocks": dropped})

    def reload(self) -> None:
        if self.config_path is None:
            return
        try:
            config = load_agent_config(self.config_path)
            sinks = build_sinks(config)
            pipelines = build_pipelines(config, sinks)
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
            sink.close()
        self.config, self.sinks, self.pipelines, self.sources = config, sinks, pipelines, sources
        self.limiter = limiter
        self._start_sources()
        self.counters["reloads"] += 1
        log.info("config reloaded", extra={"models": [p.ref.id for p in pipelines]})

    def stats(self) -> dict[str, Any]:
        return {
            "agent": dict(self.counters),
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
