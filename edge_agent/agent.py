"""The agent process: sources feed a bounded queue; the main thread windows, infers and emits,
and about once a second supervises everything that could go quiet.

Lifecycle: SIGTERM/SIGINT stop the sources, drain what is queued and wait for delivery within
`shutdown_timeout_s`, then exit; SIGHUP (or the `reload` command) reloads the config, and if the
new config or any of its bundles is bad the running pipelines keep serving. A finite run (a
replay) that produced no result from the samples it read exits with status 3 and says why.
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from edge_agent import __version__, heap, telemetry
from edge_agent.clock import CLOCK
from edge_agent.config import AgentConfig, load_agent_config
from edge_agent.config.metrics import MetricsConfig
from edge_agent.config.sinks import JsonlSinkConfig, MqttSinkConfig
from edge_agent.config.sources import MqttSourceConfig
from edge_agent.errors import ConfigError, EdgeError
from edge_agent.faults import Supervised
from edge_agent.frontend.spectra import SpectraCache
from edge_agent.logs import RateLimiter
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime.model import ModelRunner, load_model
from edge_agent.service.notify import Notifier, watchdog_interval_s
from edge_agent.sinks.base import Connects, KeepsSequence, PublishesHealth, ReportsStats, Sink
from edge_agent.sinks.fanout import Fanout
from edge_agent.sinks.jsonl import JsonlSink
from edge_agent.sources.base import AcceptsFaults, Source
from edge_agent.sources.plugins import build_source
from edge_agent.stream.blocks import SampleBlock
from edge_agent.supervisor import Health, SourceRunner

if TYPE_CHECKING:
    from edge_agent.signing import TrustedKeys
    from edge_agent.updates.store import ModelStore
    from edge_agent.versions import AcceptedVersions
from edge_agent.telemetry import Histogram

if TYPE_CHECKING:
    from edge_agent.prometheus import Endpoint

log = logging.getLogger("edge_agent.agent")
MAX_BATCH_BLOCKS = 256  # blocks dispatched between two sink flushes when a backlog is queued
EXIT_NO_OUTPUT = 3  # a finite run ended without producing what it was asked for
READY_WAIT_S = 10.0  # longest wait for the first broker connection attempt before READY=1
CLOCK_STEP_S = 1.0  # a system clock moving this much against the monotonic one was stepped
STATUS_INTERVAL_S = 5.0  # STATUS= refresh when systemd runs us without a watchdog
Reply = dict[str, Any]
Queued = tuple[float, SampleBlock]  # (time.perf_counter() when the block arrived, the block)


def build_pipelines(
    config: AgentConfig, record: bool = True, trusted: TrustedKeys | None = None
) -> list[ModelPipeline]:
    """Load and verify every bundle (signatures and anti-rollback when trusted keys are
    configured); any failure raises before anything is replaced. `record`: remember the
    versions as accepted and use the update store (not for a dry run such as check-config).
    `trusted`: the config's keys when the caller has loaded them already."""
    trusted = trusted or trusted_keys(config)
    store = _store(config) if record else None  # a dry run reads the configured bundles
    # with updates on, anti-rollback is judged against the store's current version instead
    enforce = trusted is not None and not config.updates.enabled
    versions = _accepted_versions(config) if enforce else None
    spectra: dict[str | None, SpectraCache] = {}  # one per source, shared by its models
    pipelines = []
    # Bindings of one bundle (the same model on many sensors) share its runner: the pipelines
    # all run on the main thread, and an interpreter with its buffers is ~0.3 MB per copy.
    runners: dict[tuple[Path, str, bool], ModelRunner] = {}
    for binding in config.models:
        bundle = binding.bundle if store is None else _from_store(store, binding.bundle, trusted)
        backend = binding.backend or config.runtime.backend
        key = (Path(bundle).resolve(), backend, binding.edgetpu)
        runner = runners.get(key)
        if runner is None:
            runner = runners[key] = load_model(
                bundle,
                backend=backend,
                num_threads=config.runtime.num_threads,
                edgetpu=binding.edgetpu,
                edgetpu_fallback=config.runtime.edgetpu_fallback_to_cpu,
                trusted=trusted,
            )
        if versions is not None:
            versions.check(runner.manifest, binding.bundle)
        model_id = binding.id or runner.manifest.name
        pipelines.append(
            ModelPipeline(
                config.device_id,
                model_id,
                runner,
                binding.alarm,
                [],
                binding.channel_map,
                source=binding.source,
                input_health=binding.input_health,
                spectra=spectra.setdefault(binding.source, SpectraCache()),
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
                "signed_by": runner.bundle.signed_by,
            },
        )
    if trusted is None:
        log.info("bundle signatures not enforced: no [security] trusted_keys configured")
    elif versions is not None and record:
        versions.record([p.runner.manifest for p in pipelines])
    return pipelines


def _build_sources(
    config: AgentConfig, pipelines: list[ModelPipeline], limiter: RateLimiter
) -> list[Source]:
    """Every configured source, each told the channels its models read (a replay reads only
    those columns of its file, so a label column is never parsed)."""
    sources = []
    for index, source in enumerate(config.sources):
        columns = [
            column
            for pipeline in pipelines
            if pipeline.source == source.id
            for column in pipeline.windower.source_channels
        ]
        sources.append(build_source(config, index, limiter, columns))
    return sources


def _store(config: AgentConfig) -> ModelStore | None:
    if not config.updates.enabled:
        return None
    from edge_agent.updates.store import ModelStore, default_root

    return ModelStore(config.updates.store_dir or default_root())


def _from_store(store: ModelStore, configured: Path, trusted: TrustedKeys | None) -> Path:
    """The store's current version of the configured bundle's model; the configured bundle
    seeds the store the first time, and is installed over it when its version is newer, so a
    reboot neither reverts an update nor ignores an operator's newer bundle."""
    from edge_agent.bundle import read_bundle
    from edge_agent.manifest import version_key

    manifest = read_bundle(configured, trusted).manifest
    name = manifest.name
    if store.clean(name):
        log.warning("removed an interrupted model installation", extra={"model": name})
    current = store.pointer(name)["current"]
    if current is None or version_key(manifest.version) > version_key(current):
        return store.seed(name, manifest.version, configured)
    return store.path(name, current)


def trusted_keys(config: AgentConfig) -> TrustedKeys | None:
    """The keys bundles must be signed by; None when the config trusts no key (signing not
    enforced, said once in the log)."""
    if not config.security.trusted_keys:
        return None
    from edge_agent.signing import TrustedKeys

    return TrustedKeys.load(config.security.trusted_keys)


def _accepted_versions(config: AgentConfig) -> AcceptedVersions:
    from edge_agent.versions import AcceptedVersions, default_path

    return AcceptedVersions(config.security.versions_file or default_path())


def check_sinks(config: AgentConfig) -> list[str]:
    """Prove every sink can write where it must (one ConfigError otherwise); say where."""
    from edge_agent.mqtt.publisher import check_spool_dir

    found = []
    for sink in config.sinks:
        if isinstance(sink, MqttSinkConfig):
            assert config.mqtt is not None
            found.append(f"spool {check_spool_dir(sink, config.mqtt, config.device_id)}")
    return found


def check_metrics(config: AgentConfig) -> list[str]:
    """Prove the Prometheus endpoint can be served (its extra is installed; one ConfigError
    otherwise) and say where. Whether the port is free is known only when the agent binds it."""
    metrics = config.metrics
    if metrics.prometheus_port is None:
        return []
    _prometheus()
    return [f"prometheus endpoint on {metrics.prometheus_host} port {metrics.prometheus_port}"]


def _prometheus() -> ModuleType:
    try:
        import edge_agent.prometheus
    except ModuleNotFoundError as exc:
        if exc.name != "prometheus_client":
            raise
        raise ConfigError(
            "[metrics] prometheus_port is set but prometheus_client is not installed "
            "(pip install 'edge-pdm[prometheus]')"
        ) from None
    return edge_agent.prometheus


def open_endpoint(metrics: MetricsConfig) -> Endpoint | None:
    """Bind the Prometheus port (if configured) before anything starts, so that a taken port
    stops the agent with one line instead of leaving it half started."""
    if metrics.prometheus_port is None:
        return None
    return _prometheus().Endpoint(str(metrics.prometheus_host), metrics.prometheus_port)


def _sink_key(config: AgentConfig, index: int) -> tuple[Any, ...]:
    """What a sink instance depends on: equal keys mean a reload can keep the instance."""
    sink = config.sinks[index]
    if isinstance(sink, JsonlSinkConfig):
        return (sink,)
    return (sink, config.mqtt, config.device_id, tuple(_obeyed(config)))


def _obeyed(config: AgentConfig) -> list[str]:
    return [s.topic for s in config.sources if isinstance(s, MqttSourceConfig)]


class Agent:
    def __init__(self, config: AgentConfig, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.limiter = RateLimiter(config.log.repeat_interval_s)
        self.started_at = time.time()
        self.counters: Counter[str] = Counter()
        self.health = Health()
        self.trusted = trusted_keys(config)
        self.pipelines = build_pipelines(config, trusted=self.trusted)
        self.updates = None
        if config.updates.enabled:
            from edge_agent.updates.manager import UpdateManager

            self.updates = UpdateManager(self)
        self.queue: queue.Queue[Queued] = queue.Queue(maxsize=config.queue_blocks)
        self.queue_wait_ms = {source.id: Histogram() for source in config.sources}
        self.sources = self._runner(config, _build_sources(config, self.pipelines, self.limiter))
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self._work: queue.Queue[Callable[[], None]] = queue.Queue()  # run on the main thread
        self._next_metrics = time.monotonic()
        self._next_check = 0.0
        self.notifier = Notifier()
        self._watchdog_s = watchdog_interval_s()
        self._next_ping = 0.0
        self._rate_mark = (time.monotonic(), 0)  # (when, results) at the last status line
        self._withheld: str | None = None  # why the last watchdog ping was withheld
        self._clock_step = CLOCK.stepped()
        self.sinks: list[Sink] = []
        self._sink_keys: list[tuple[Any, ...]] = []
        self.fanout = Fanout([], self.counters, self.limiter)
        self.endpoint = open_endpoint(config.metrics)  # a taken port stops us before we connect
        self._attach_sinks(config)  # last: an MQTT sink may call back (birth, commands) at once
        if self.endpoint is not None:
            from edge_agent.prometheus import AgentCollector

            collector = AgentCollector(self.stats, config.device_id, self.counters, self.limiter)
            self.endpoint.serve(collector)

    def _runner(self, config: AgentConfig, sources: list[Source]) -> SourceRunner:
        return SourceRunner(
            sources, self._emit, config.supervisor.idle_after_s, config.supervisor.restart_max_s
        )

    # ---- sinks, sequences, status and commands ---------------------------------------------
    def _build_sink(self, config: AgentConfig, index: int) -> Sink:
        sink = config.sinks[index]
        if isinstance(sink, JsonlSinkConfig):
            return JsonlSink(sink.path, sink.fsync)
        from edge_agent.mqtt.publisher import MqttPublisher

        assert config.mqtt is not None
        return MqttPublisher(
            sink,
            config.mqtt,
            config.device_id,
            self.birth,
            self.command_handlers(),
            _obeyed(config),
            self.limiter,
        )

    def _attach_sinks(self, config: AgentConfig) -> None:
        """Build the sinks a config names, keeping any whose configuration did not change (a
        reload must not drop the broker connection for nothing)."""
        kept = dict(zip(self._sink_keys, self.sinks))
        keys = [_sink_key(config, i) for i in range(len(config.sinks))]
        for key, sink in kept.items():
            if key not in keys:
                Fanout([sink], self.counters, self.limiter).close(config.shutdown_timeout_s / 2)
        self.sinks = [kept.get(key) or self._build_sink(config, i) for i, key in enumerate(keys)]
        self._sink_keys = keys
        self.fanout.sinks = list(self.sinks)
        for pipeline in self.pipelines:
            pipeline.sinks = [self.fanout]
            # Subscribers de-duplicate on (device, model, seq): continue where the spool left off.
            stored = [
                s.sequence(pipeline.ref.id) for s in self.sinks if isinstance(s, KeepsSequence)
            ]
            pipeline.seq = max([pipeline.seq, *stored])

    def birth(self) -> dict[str, Any]:
        """The retained status: online or degraded (with why), and what the device runs."""
        return {
            "schema_version": 1,
            "state": self.health.state,
            **({"reasons": list(self.health.reasons)} if self.health.reasons else {}),
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
                    "input_checks": p.monitor is not None,
                    **(
                        {"units": p.runner.manifest.output.units}
                        if p.runner.manifest.task == "rul"
                        else {}
                    ),
                }
                for p in self.pipelines
            ],
        }

    def command_handlers(self) -> dict[str, Callable[[dict[str, Any]], Reply | Future[Reply]]]:
        """Verbs a requester may send (transport-free: the MQTT layer validates and routes)."""
        return {
            "status": lambda _r: {"ok": True, "status": self.birth(), "stats": self.stats()},
            "reload": self._command_reload,
            "ack": self._command_ack,
            "fault": self._command_fault,
            **(self.updates.handlers() if self.updates is not None else {}),
        }

    def later(self, action: Callable[[], Reply]) -> Future[Reply]:
        """Run `action` on the main thread between blocks; the reply waits for its outcome."""
        future: Future[Reply] = Future()

        def run() -> None:
            try:
                future.set_result(action())
            except Exception as exc:  # answered, never raised into the main loop
                log.exception("command failed on the main thread")
                future.set_result({"ok": False, "error": f"internal error: {type(exc).__name__}"})

        self._work.put(run)
        return future

    def models_changed(self) -> None:
        """Re-announce what the device runs (status, Home Assistant) after a model change."""
        heap.settle()
        for sink in self.sinks:
            if isinstance(sink, PublishesHealth):
                sink.publish_status(models_changed=True)

    def _command_reload(self, _request: dict[str, Any]) -> Future[Reply]:
        return self.later(self.reload)

    def _command_ack(self, request: dict[str, Any]) -> Reply | Future[Reply]:
        model = request.get("model")
        pipeline = next((p for p in self.pipelines if p.ref.id == model), None)
        if pipeline is None:
            return {"ok": False, "error": f"unknown model {model!r}"}
        by = str(request.get("by", ""))[:64]
        return self.later(lambda: {"ok": True, "acknowledged": pipeline.acknowledge(by)})

    def _command_fault(self, request: dict[str, Any]) -> Reply:
        source = next((s for s in self.sources.slots if s.source.id == request.get("source")), None)
        if source is None or not isinstance(source.source, AcceptsFaults):
            return {"ok": False, "error": "fault needs the id of a simulator source"}
        try:
            source.source.set_fault(str(request.get("fault")), float(request.get("severity", 1.0)))
        except (TypeError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True}

    # ---- supervision -----------------------------------------------------------------------
    def supervise(self) -> None:
        """Watch sources and sinks, let them recover, and publish any change of health."""
        self._notice_clock_step()
        reasons = self.sources.check()
        for pipeline in self.pipelines:
            if pipeline.windower.stalled():  # the pipeline logged the details with figures
                kind = pipeline.windower.stall_kind().replace("_", " ")
                reasons.append(
                    f"model {pipeline.ref.id}: samples arrive but no window forms ({kind})"
                )
        for sink in self.sinks:
            if isinstance(sink, Supervised):
                reasons += sink.supervise()
        self._set_health(Health.from_reasons(reasons))
        if self.updates is not None:
            self.updates.tick()

    def _notice_clock_step(self) -> None:
        """Count and log a step of the system clock (NTP at boot on a Pi without a real-time
        clock); ages and skew checks use the steady clock, so nothing else has to react."""
        stepped = CLOCK.stepped()
        if abs(stepped - self._clock_step) > CLOCK_STEP_S:
            self.counters["clock_steps"] += 1
            log.warning(
                "system clock stepped", extra={"by_s": round(stepped - self._clock_step, 3)}
            )
            self._clock_step = stepped

    def _set_health(self, health: Health) -> None:
        if health == self.health:
            return
        previous, self.health = self.health, health
        if health.state == "degraded":
            self.counters["degraded"] += 1
            log.warning("degraded", extra={"reasons": list(health.reasons)})
        else:
            log.info("back to normal", extra={"was": list(previous.reasons)})
        event = {
            "ts": time.time(),
            "state": health.state,
            "severity": "critical" if health.state == "degraded" else "info",
            "reasons": list(health.reasons),
            "previous_reasons": list(previous.reasons),
        }
        for sink in self.sinks:
            if isinstance(sink, PublishesHealth):
                try:
                    sink.publish_status()
                    sink.publish_health_event(event)
                except Exception:
                    self.counters["faults:health_publish"] += 1
                    log.exception("could not publish health")

    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        """Any thread ended by an exception (paho's, a driver's own): one line, counted."""
        self.counters["thread_crashes"] += 1
        name = args.thread.name if args.thread is not None else "?"
        log.error(
            "thread ended by an exception",
            extra={"thread": name, "error": f"{args.exc_type.__name__}: {args.exc_value}"},
        )

    # ---- sources -------------------------------------------------------------------------
    def _emit(self, block: SampleBlock) -> None:
        item = (time.perf_counter(), block)  # arrival: waiting for room counts as queue wait
        while not self.sources.stop_event.is_set():
            try:
                self.queue.put(item, timeout=0.25)
                return
            except queue.Full:
                self.counters["queue_full_waits"] += 1

    # ---- main loop -----------------------------------------------------------------------
    def dispatch(self, item: Queued) -> None:
        arrived, block = item
        waited = self.queue_wait_ms.get(block.stream)
        if waited is not None:
            waited.observe((time.perf_counter() - arrived) * 1000.0)
        for pipeline in self.pipelines:
            if pipeline.source != block.stream:
                continue
            try:
                pipeline.push(block, arrived)
            except Exception:  # unexpected: count and keep serving the other models
                self.counters["pipeline_errors"] += 1
                if self.limiter.allow(f"pipeline:{pipeline.ref.id}"):
                    log.exception("pipeline error", extra={"model": pipeline.ref.id})
        if self.updates is not None:
            self.updates.dispatch(block)

    def _housekeeping(self) -> None:
        while True:
            try:
                self._work.get_nowait()()
            except queue.Empty:
                break
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.config.supervisor.check_interval_s
            self.supervise()
            self.fanout.flush()  # a quiet input must not leave a timed commit waiting
        if self.notifier.enabled and now >= self._next_ping:
            self._next_ping = now + (self._watchdog_s or STATUS_INTERVAL_S)
            self.notifier.status(self.status_line())
            if self._watchdog_s is not None and self.watchdog_ok():
                self.notifier.watchdog()
        if now >= self._next_metrics:
            publishers = [s for s in self.sinks if isinstance(s, PublishesHealth)]
            self._next_metrics = now + min((s.metrics_interval_s for s in publishers), default=60)
            telemetry.roll(self)  # each metrics message has the percentiles of its interval
            if publishers:
                metrics = self.stats()
                for sink in publishers:
                    sink.publish_metrics(metrics)

    def run(self) -> int:
        log.info("agent started", extra={"device": self.config.device_id, "version": __version__})
        previous_hook, threading.excepthook = threading.excepthook, self._thread_died
        try:
            return self._run()
        finally:
            threading.excepthook = previous_hook

    def _run(self) -> int:
        self.sources.start()
        self._wait_first_attempts(READY_WAIT_S)
        heap.settle()
        self.notifier.ready(self.status_line())
        exhausted = False
        while not self.stop_event.is_set():
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
            self._housekeeping()
            try:
                block = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self.sources.exhausted():
                    exhausted = True  # every source ended (a replay finished, a duration)
                    break
                continue
            self.dispatch(block)
            # Under load, take what else is waiting before one flush: one commit per batch.
            self._drain(limit=MAX_BATCH_BLOCKS)
            self.fanout.flush()
        self.shutdown()
        return self._verdict() if exhausted else 0

    def _drain(self, limit: int | None = None, deadline: float | None = None) -> None:
        """Dispatch what is queued now, up to `limit` blocks or until `deadline` (monotonic)."""
        taken = 0
        while (limit is None or taken < limit) and (
            deadline is None or time.monotonic() < deadline
        ):
            try:
                self.dispatch(self.queue.get_nowait())
            except queue.Empty:
                return
            taken += 1

    def _verdict(self) -> int:
        """A finite run that read samples but produced nothing, or lost a source, failed."""
        problems = [
            f"model {p.ref.id}: {reason}"
            for p in self.pipelines
            if (reason := p.no_output_reason()) is not None
        ]
        problems += [f"source {s.source.id} failed: {s.error}" for s in self.sources.failed()]
        for problem in problems:
            log.error("run produced no results", extra={"problem": problem})
            print(f"edge-agent: error: {problem}", file=sys.stderr)
        return EXIT_NO_OUTPUT if problems else 0

    def shutdown(self) -> None:
        """Stop sources, drain the queue, then give sinks the rest of `shutdown_timeout_s` to
        deliver (an MQTT sink waits for acknowledgements) and close them."""
        self.notifier.stopping()
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        self.sources.stop(self.config.shutdown_timeout_s / 4)
        self._drain(deadline=deadline)
        self.fanout.flush()
        undrained = self.queue.qsize()
        self.fanout.close(max(0.0, deadline - time.monotonic()))
        log.info("agent stopped", extra={"stats": self.stats(), "undrained_blocks": undrained})
        if self.endpoint is not None:
            self.endpoint.close()

    def reload(self) -> Reply:
        """Apply the config file again; on any error keep everything running as it was."""
        if self.config_path is None:
            return {"ok": False, "error": "the agent was not started from a config file"}
        self.notifier.reloading()
        try:
            return self._reload(self.config_path)
        finally:
            self.notifier.ready(self.status_line())

    def _reload(self, path: Path) -> Reply:
        try:
            config = load_agent_config(path)
            check_sinks(config)
            trusted = trusted_keys(config)
            pipelines = build_pipelines(config, trusted=trusted)
            limiter = RateLimiter(config.log.repeat_interval_s)
            sources = _build_sources(config, pipelines, limiter)
        except EdgeError as exc:
            log.error("reload failed; previous config keeps running", extra={"error": str(exc)})
            self.counters["reload_failures"] += 1
            return {"ok": False, "error": str(exc), "kept": "previous config kept"}
        except Exception as exc:  # a bug while reading the new config must not end the agent
            log.exception("reload failed; previous config keeps running")
            self.counters["reload_failures"] += 1
            error = f"internal error: {type(exc).__name__}: {exc}"
            return {"ok": False, "error": error, "kept": "previous config kept"}
        previous = {p.ref.id: p.seq for p in self.pipelines}
        for pipeline in pipelines:  # subscribers de-duplicate on seq: never restart it
            pipeline.seq = previous.get(pipeline.ref.id, 0)
        self.sources.stop(self.config.shutdown_timeout_s / 4)
        self._drain()
        self.fanout.flush()
        if self.updates is not None:
            self.updates.cancel_all("a config reload replaced the running models")
        self.pipelines = pipelines
        self.trusted = trusted
        self.queue_wait_ms = {source.id: Histogram() for source in config.sources}
        if config.metrics != self.config.metrics:
            log.warning("[metrics] changes take effect at the next start")
        self.config, self.limiter = config, limiter
        self._attach_sinks(config)
        self.sources = self._runner(config, sources)
        self.sources.start()
        self.counters["reloads"] += 1
        models = [p.ref.id for p in pipelines]
        log.info("config reloaded", extra={"models": models})
        self.models_changed()
        return {"ok": True, "models": models, "sources": [s.id for s in config.sources]}

    # ---- service manager ---------------------------------------------------------------------
    def _wait_first_attempts(self, timeout: float) -> None:
        """READY only once every broker connection has been tried (answered or failed), so a
        broker that is down delays readiness by at most `timeout` and never prevents it."""
        deadline = time.monotonic() + timeout
        for sink in self.sinks:
            if isinstance(sink, Connects):
                sink.first_attempt.wait(max(0.0, deadline - time.monotonic()))

    def watchdog_ok(self) -> bool:
        """Whether to tell systemd we are alive: the main loop runs (we are in it), no steady
        source is stuck, and no recovery has gone without a result past the deadline. A broker
        outage is not a reason: the agent keeps inferring into its spool."""
        deadline = self.config.supervisor.recovery_deadline_s
        problems = [f"source {s} stuck" for s in self.sources.stuck()]
        for part in [*self.sinks, *(slot.source for slot in self.sources.slots)]:
            if isinstance(part, Supervised) and part.stuck_for() > deadline:
                problems.append(f"{type(part).__name__} recovery without result for {deadline:g} s")
        why = "; ".join(problems) or None
        if why != self._withheld:
            self._withheld = why
            if why is not None:
                self.counters["watchdog_withheld"] += 1
                log.error(
                    "withholding the watchdog ping; systemd will restart us", extra={"why": why}
                )
            else:
                log.info("watchdog pings resumed")
        return why is None

    def status_line(self) -> str:
        """One line for `systemctl status`: health, results/s, spool depth, broker, why."""
        now, results = time.monotonic(), sum(p.results for p in self.pipelines)
        since, before = self._rate_mark
        self._rate_mark = (now, results)
        parts = [self.health.state, f"{(results - before) / max(now - since, 1e-3):.1f} results/s"]
        for sink in self.sinks:
            if isinstance(sink, ReportsStats):
                stats = sink.stats()
                if "spool_messages" in stats:
                    parts.append(f"spool {stats['spool_messages']}")
                if "connected" in stats:
                    parts.append("broker " + ("connected" if stats["connected"] else "unreachable"))
        return "; ".join(parts + list(self.health.reasons[:1]))

    def stats(self) -> dict[str, Any]:
        """Health, counters, gauges and latency histograms (telemetry.snapshot)."""
        return telemetry.snapshot(self)

    def install_signal_handlers(self) -> None:
        handler: Callable[[int, Any], None] = lambda signum, _frame: self._on_signal(signum)  # noqa: E731
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, handler)

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.reload_event.set()
        else:
            self.stop_event.set()
