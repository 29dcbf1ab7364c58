"""The update lifecycle on a running agent, one update per model at a time.

accepted -> downloaded -> verified (signature, hash, anti-rollback, golden test) -> shadowing
(the candidate scores the live windows beside the running model, publishing nothing) ->
promoted (or awaiting_approval, then promoted) | rolled_back (the shadow bar was missed) |
refused (any check failed). Every step is a DeploymentEvent on the model's retained
`deployment` topic; the running model serves throughout and the swap happens between blocks,
with the candidate's windower already in step, so no window is lost or made by two models.

Fetching and loading run on a worker thread; everything that touches pipelines or sinks runs on
the agent's main thread (`Agent.later`).
"""

from __future__ import annotations

import copy
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.bundle import MANIFEST_FILE, MODEL_FILE, read_bundle
from edge_agent.errors import EdgeError
from edge_agent.events import DeploymentEvent
from edge_agent.manifest import version_key
from edge_agent.pipeline import ModelPipeline
from edge_agent.runtime.model import ModelRunner, load_model
from edge_agent.updates.fetch import fetch
from edge_agent.updates.shadow import Tap, compare
from edge_agent.updates.store import ModelStore, default_root

if TYPE_CHECKING:
    from edge_agent.agent import Agent

log = logging.getLogger("edge_agent.updates")
Reply = dict[str, Any]
DONE_DIR = ".done"


@dataclass
class Job:
    model_id: str
    source: str
    reply: Future[Reply] = field(default_factory=Future)
    version: str | None = None
    candidate: ModelPipeline | None = None
    live_tap: Tap = field(default_factory=Tap)
    candidate_tap: Tap = field(default_factory=Tap)
    agreement: dict[str, Any] | None = None
    awaiting: bool = False


class UpdateManager:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.config = agent.config.updates
        self.store = ModelStore(self.config.store_dir or default_root())
        self.jobs: dict[str, Job] = {}
        self._watched: dict[Path, tuple] = {}  # folder -> its listing at the previous check

    # ---- commands (called on the MQTT network thread) -------------------------------------
    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Reply | Future[Reply]]]:
        return {"update": self.update, "approve": self.approve, "rollback": self.rollback}

    def update(self, request: dict[str, Any]) -> Reply | Future[Reply]:
        model, source = request.get("model"), request.get("source")
        if not isinstance(source, str) or not source:
            return {"ok": False, "error": "update needs 'source': a bundle folder or http(s) URL"}
        return self.start(str(model), source)

    def approve(self, request: dict[str, Any]) -> Reply | Future[Reply]:
        job = self.jobs.get(str(request.get("model")))
        if job is None or not job.awaiting:
            return {"ok": False, "error": f"no update of {request.get('model')!r} awaits approval"}
        return self.agent.later(lambda: self._promote(job))

    def rollback(self, request: dict[str, Any]) -> Reply | Future[Reply]:
        model = str(request.get("model"))
        if self._live(model) is None:
            return {"ok": False, "error": f"unknown model {model!r}"}
        return self.agent.later(lambda: self._roll_back(model))

    # ---- the lifecycle ----------------------------------------------------------------------
    def start(self, model_id: str, source: str) -> Reply | Future[Reply]:
        live = self._live(model_id)
        if live is None:
            return {"ok": False, "error": f"unknown model {model_id!r}"}
        if model_id in self.jobs:
            return {"ok": False, "error": f"an update of {model_id} is already in progress"}
        job = Job(model_id, source)
        self.jobs[model_id] = job
        self._publish_later(job, "accepted", source=source)
        threading.Thread(target=self._prepare, args=(job, live), name="update", daemon=True).start()
        return job.reply

    def _prepare(self, job: Job, live: ModelPipeline) -> None:
        """Worker thread: fetch, verify and load; then hand the candidate to the main thread."""
        name = live.runner.manifest.name
        staging = self.store.stage(name)
        try:
            fetch(
                job.source,
                staging,
                int(self.config.max_download_mb * 2**20),
                self.config.download_timeout_s,
            )
            self._publish_later(job, "downloaded")
            manifest = read_bundle(staging, self.agent.trusted).manifest
            job.version = manifest.version
            current = live.runner.manifest
            if manifest.name != name:
                raise EdgeError(f"the bundle is {manifest.name}, not an update of {name}")
            if version_key(manifest.version) <= version_key(current.version):
                raise EdgeError(
                    f"version {manifest.version} does not go past the running {current.version} "
                    "(anti-rollback; use the rollback command to go back)"
                )
            target = self.store.install(name, manifest.version, staging)
            runner = self._load(target)
        except (EdgeError, OSError) as exc:
            self._refuse_later(job, str(exc))
            return
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        golden = f"golden max error {runner.golden_error:.3g} on {runner.backend}"
        self._publish_later(job, "verified", reason=golden)
        self.agent.later(lambda: self._shadow(job, live, runner))

    def _load(self, path: Path) -> ModelRunner:
        runtime = self.agent.config.runtime
        return load_model(
            path,
            backend=runtime.backend,
            num_threads=runtime.num_threads,
            trusted=self.agent.trusted,
        )

    def _shadow(self, job: Job, live: ModelPipeline, runner: ModelRunner) -> Reply:
        """Main thread: the candidate starts scoring the live stream beside the running model."""
        if self._live(job.model_id) is not live:  # a reload replaced it meanwhile
            return self._refuse(job, "the running model changed during the update")
        if not _same_windows(live, runner):
            return self._refuse(
                job,
                "the new bundle cuts other windows (channels, rate, window or hop); a "
                "shadow comparison needs the same windows: install it with a config change",
            )
        job.candidate = _beside(live, runner, [job.candidate_tap])
        live.sinks.append(job.live_tap)
        self._publish(job, "shadowing", reason=f"comparing {self.config.shadow_windows} windows")
        return {"ok": True}

    def dispatch(self, block) -> None:
        """Main thread: the candidates in a shadow run get every block their model gets."""
        for job in list(self.jobs.values()):
            candidate = job.candidate
            if candidate is None or candidate.source != block.stream:
                continue
            try:
                candidate.push(block)
            except Exception as exc:  # a candidate that breaks on live data never goes live
                self._detach(job)
                self._publish(job, "rolled_back", reason=f"failed on live data: {exc!r}")
                self._finish(job, {"ok": False, "error": f"failed on live data: {exc!r}"})

    def cancel_all(self, reason: str) -> None:
        """Main thread: end every update in progress (a reload replaces the running models)."""
        for job in list(self.jobs.values()):
            self._refuse(job, reason)

    def tick(self) -> None:
        """Main thread, once per supervision: judge finished shadow runs, watch the folder."""
        for job in list(self.jobs.values()):
            if job.candidate is None or job.awaiting:
                continue
            task = job.candidate.runner.manifest.task
            live = self._live(job.model_id)
            assert live is not None
            job.agreement = compare(
                task, job.live_tap.outputs, job.candidate_tap.outputs, live.alarm_config
            )
            if job.agreement["windows"] < self.config.shadow_windows:
                continue
            agreement = job.agreement["decision_agreement"]
            if agreement < self.config.min_agreement:
                self._detach(job)
                self._publish(
                    job,
                    "rolled_back",
                    reason=f"shadow decision agreement {agreement:.3f} < "
                    f"{self.config.min_agreement:g}; {self._running(job.model_id)} keeps serving",
                )
                self._finish(job, {"ok": False, "error": "shadow bar missed", **job.agreement})
            elif self.config.approval == "manual":
                job.awaiting = True
                self._publish(job, "awaiting_approval", reason="send the approve command")
                job.reply.set_result({"ok": True, "state": "awaiting_approval", **job.agreement})
            else:
                self._promote(job)
        if self.config.watch_dir is not None:
            self._watch(self.config.watch_dir)

    def _promote(self, job: Job) -> Reply:
        """Main thread, between blocks: the candidate, already in step, takes over."""
        started = time.perf_counter()
        live = self._live(job.model_id)
        candidate = job.candidate
        assert live is not None and candidate is not None
        self._detach(job)
        manifest = candidate.runner.manifest
        previous = live.runner.manifest.version
        self._take_over(live, candidate)
        self.store.switch(manifest.name, manifest.version, previous)
        swap_ms = round((time.perf_counter() - started) * 1000.0, 3)  # the pointer's fsyncs too
        self._publish(job, "promoted", reason=f"replaces {previous}", swap_ms=swap_ms)
        log.info("model promoted", extra={"model": job.model_id, "version": manifest.version})
        reply = {
            "ok": True,
            "state": "promoted",
            "version": manifest.version,
            **(job.agreement or {}),
        }
        self._finish(job, reply)
        return reply

    def _roll_back(self, model_id: str) -> Reply:
        """Main thread: the store's previous version takes over at once (no shadow run)."""
        live = self._live(model_id)
        assert live is not None
        if model_id in self.jobs:
            job = self.jobs[model_id]
            self._detach(job)
            self._publish(job, "rolled_back", reason="rollback command during the update")
            self._finish(job, {"ok": False, "error": "cancelled by a rollback command"})
        name, current = live.runner.manifest.name, live.runner.manifest.version
        previous = self.store.pointer(name)["previous"]
        if previous is None:
            return {"ok": False, "error": f"{model_id}: no previous version in the store"}
        try:
            runner = self._load(self.store.path(name, previous))
        except EdgeError as exc:
            return {"ok": False, "error": str(exc)}
        if not _same_windows(live, runner):
            return {"ok": False, "error": f"{previous} cuts other windows; roll back by config"}
        replacement = _beside(live, runner, [])
        replacement.windower = live.windower  # continues the stream where it is
        self._take_over(live, replacement)
        self.store.switch(name, previous, current)
        self._step(model_id, "rolled_back", previous, f"rollback command: {current} -> {previous}")
        log.warning("model rolled back", extra={"model": model_id, "to": previous})
        return {"ok": True, "state": "rolled_back", "version": previous, "was": current}

    def _take_over(self, live: ModelPipeline, replacement: ModelPipeline) -> None:
        """Between blocks: `replacement` serves the binding from now on, continuing its sequence
        numbers and alarm state (they belong to the binding, not the model) and input checks."""
        replacement.seq, replacement.results = live.seq, live.results
        replacement.alarm, replacement.monitor = live.alarm, live.monitor
        replacement.sinks = [self.agent.fanout]
        self.agent.pipelines[self.agent.pipelines.index(live)] = replacement
        self.agent.models_changed()

    # ---- the watched folder -----------------------------------------------------------------
    def _watch(self, folder: Path) -> None:
        """A bundle folder is taken once it is complete and unchanged since the last check
        (copy elsewhere and `mv` it in to make that immediate); then moved to `.done/`."""
        if not folder.is_dir():
            return
        for path in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != DONE_DIR):
            listing = tuple(
                (f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.iterdir())
            )
            stable = self._watched.get(path) == listing
            self._watched[path] = listing
            names = {name for name, _, _ in listing}
            if not stable or not {MANIFEST_FILE, MODEL_FILE} <= names:
                continue
            del self._watched[path]
            done = folder / DONE_DIR / f"{path.name}-{int(time.time())}"
            done.parent.mkdir(exist_ok=True)
            path.rename(done)
            try:
                name = read_bundle(done).manifest.name  # which binding: by manifest name
            except EdgeError as exc:
                log.error("watched bundle unreadable", extra={"path": str(done), "error": str(exc)})
                continue
            for pipeline in list(self.agent.pipelines):
                if pipeline.runner.manifest.name == name:
                    self.start(pipeline.ref.id, str(done))

    # ---- helpers ----------------------------------------------------------------------------
    def _live(self, model_id: str) -> ModelPipeline | None:
        return next((p for p in self.agent.pipelines if p.ref.id == model_id), None)

    def _running(self, model_id: str) -> str:
        live = self._live(model_id)
        return live.runner.manifest.version if live is not None else "?"

    def _detach(self, job: Job) -> None:
        live = self._live(job.model_id)
        if live is not None and job.live_tap in live.sinks:
            live.sinks.remove(job.live_tap)
        job.candidate = None

    def _finish(self, job: Job, reply: Reply) -> None:
        self.jobs.pop(job.model_id, None)
        if not job.reply.done():
            job.reply.set_result(reply)

    def _publish(
        self,
        job: Job,
        state: str,
        reason: str = "",
        ts: float | None = None,
        at_step: tuple[str | None] | None = None,
        **details: Any,
    ) -> None:
        """`at_step`: the version as it was known when the step happened (worker steps)."""
        steps_with_agreement = ("shadowing", "awaiting_approval", "promoted", "rolled_back")
        if job.agreement is not None and state in steps_with_agreement:
            details["agreement"] = job.agreement
        version = job.version if at_step is None else at_step[0]
        self._step(job.model_id, state, version, reason, ts, **details)
        extra = {"model": job.model_id, "version": version, "reason": reason}
        log.info(f"update {state}", extra=extra)

    def _step(
        self,
        model_id: str,
        state: str,
        version: str | None,
        reason: str,
        ts: float | None = None,
        **details: Any,
    ) -> None:
        """Publish one step (retained and as an event) at once."""
        event = DeploymentEvent(
            self.agent.config.device_id,
            model_id,
            state,
            version,
            self._running(model_id),
            reason,
            details,
            time.time() if ts is None else ts,
        )
        self.agent.fanout.emit(event)
        self.agent.fanout.flush()

    def _publish_later(self, job: Job, state: str, reason: str = "", **details: Any) -> None:
        """From the worker thread: published by the main thread, stamped with the step's time."""
        ts = time.time()
        self.agent.later(
            lambda: (self._publish(job, state, reason, ts, **details), {"ok": True})[1]
        )

    def _refuse(self, job: Job, reason: str) -> Reply:
        self._detach(job)
        self._publish(job, "refused", reason=reason)
        reply = {"ok": False, "error": reason}
        self._finish(job, reply)
        return reply

    def _refuse_later(self, job: Job, reason: str) -> None:
        log.error("update refused", extra={"model": job.model_id, "reason": reason})
        self.agent.later(lambda: self._refuse(job, reason))


def _same_windows(live: ModelPipeline, runner: ModelRunner) -> bool:
    old, new = live.runner.manifest.input, runner.manifest.input
    return (old.channels, old.sample_rate_hz, old.window, old.hop) == (
        new.channels,
        new.sample_rate_hz,
        new.window,
        new.hop,
    )


def _beside(live: ModelPipeline, runner: ModelRunner, sinks: list) -> ModelPipeline:
    """A pipeline for `runner` in step with `live`: a copy of its windower (same buffered
    samples, same window boundaries), its alarm rules, its source and spectra; no input checks
    of its own."""
    pipeline = ModelPipeline(
        live.device,
        live.ref.id,
        runner,
        live.alarm_config,
        sinks,
        source=live.source,
        spectra=live.spectra,
    )
    pipeline.windower = copy.deepcopy(live.windower)
    pipeline.monitor = None
    return pipeline
