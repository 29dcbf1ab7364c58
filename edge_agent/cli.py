"""`edge-agent`: run the device agent, check configs and bundles, run one-off inference."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from edge_agent.cli_common import run_cli
from edge_agent.errors import ConfigError
from edge_agent.runtime.backends import BACKEND_CHOICES

log = logging.getLogger("edge_agent.cli")


def _run(args: argparse.Namespace) -> int:
    from edge_agent.agent import Agent
    from edge_agent.config import load_agent_config
    from edge_agent.logs import setup_logging

    config = load_agent_config(args.config)
    setup_logging(args.log_level or config.log.level, config.log.format)
    agent = Agent(config, Path(args.config))
    agent.install_signal_handlers()
    return agent.run()


def _check_config(args: argparse.Namespace) -> int:
    from edge_agent.agent import build_pipelines, check_metrics, check_sinks
    from edge_agent.config import load_agent_config

    config = load_agent_config(args.config)
    endpoints = check_metrics(config)
    pipelines = build_pipelines(config, record=False)  # a dry run: no state written
    writable = check_sinks(config)
    print(f"{args.config}: ok, device '{config.device_id}'")
    for pipeline in pipelines:
        runner = pipeline.runner
        print(
            f"  model {pipeline.ref.id}: {runner.manifest.name} {runner.manifest.version} "
            f"({runner.manifest.task}) on {runner.backend}, source '{pipeline.source}'"
        )
    fits = _check_replays(args.config, config, pipelines)
    for source in config.sources:
        print(f"  source {source.id}: {source.kind}{fits.get(source.id, '')}")
    for where in writable:
        print(f"  {where}: writable")
    for endpoint in endpoints:
        print(f"  {endpoint}")
    return 0


def _check_replays(config_path: str, config, pipelines) -> dict[str, str]:
    """Open each replay file's header: it must hold the channels of every model bound to that
    source (after channel_map) and the time column the models need. A misfit is one
    ConfigError line naming what is missing; a fit is a note per source id."""
    from edge_agent.config.sources import ReplaySourceConfig
    from edge_agent.recording import column_names

    notes = {}
    for source in config.sources:
        if not isinstance(source, ReplaySourceConfig):
            continue
        header = column_names(source.path, source.delimiter)
        bound = [p for p in pipelines if p.source == source.id]
        problems = []
        if source.channels:
            absent = [c for c in source.channels if c not in header]
            if absent:
                problems.append(f"channels {absent} are not in the file")
        for pipeline in bound:
            needed = pipeline.windower.source_channels
            absent = [c for c in needed if c not in header]
            if absent:
                problems.append(f"model '{pipeline.ref.id}' needs column(s) {absent}")
            left_out = [c for c in needed if c in header and c not in (source.channels or needed)]
            if left_out:
                problems.append(f"model '{pipeline.ref.id}' needs {left_out}, not in channels")
        time = source.time_source()
        timed = [p.ref.id for p in bound if p.runner.manifest.input.sample_rate_hz]
        if time and time not in header and timed and source.sample_rate_hz is None:
            problems.append(
                f"no time column '{time}' for model(s) {timed} (set time_column, or "
                'time = "index" with sample_rate_hz)'
            )
        if problems:
            raise ConfigError(
                f"{config_path}: source '{source.id}': {source.path} does not fit: "
                + "; ".join(problems)
                + f" (header: {header})"
            )
        if time and time in header:
            clock = f"time '{time}'"
        elif source.sample_rate_hz:
            clock = f"rows at {source.sample_rate_hz:g} Hz"
        else:
            clock = "one row per cycle"
        if bound:
            notes[source.id] = f" {source.path}, columns for {len(bound)} model(s) and {clock}"
    return notes


def _trusted(args: argparse.Namespace):
    """Trusted keys from --public-key (signatures then required), or None."""
    if not args.public_key:
        return None
    from edge_agent.signing import TrustedKeys

    return TrustedKeys.load([Path(p) for p in args.public_key])


def _check_model(args: argparse.Namespace) -> int:
    from edge_agent.describe import inspect

    print(inspect(args.bundle, args.backend, args.num_threads, args.json, _trusted(args)))
    return 0


def _infer(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from edge_agent.config.models import AlarmConfig
    from edge_agent.config.sources import ReplaySourceConfig
    from edge_agent.pipeline import ModelPipeline
    from edge_agent.recording import column_names
    from edge_agent.runtime import load_model
    from edge_agent.schema import describe_validation_error
    from edge_agent.sinks.jsonl import JsonlSink
    from edge_agent.sources.replay import ReplaySource

    runner = load_model(args.bundle, backend=args.backend, trusted=_trusted(args))
    rate = args.sample_rate
    if args.time == "index" and rate is None:
        rate = runner.manifest.input.sample_rate_hz  # rows at the model's own rate
    try:
        replay = ReplaySourceConfig(
            kind="replay",
            id="input",
            path=Path(args.input),
            delimiter=args.delimiter,
            time=args.time,
            time_column=args.time_column,
            time_format=args.time_format,
            timezone=args.timezone,
            sample_rate_hz=rate,
            # The model's own gap rule unless overridden: the recording's note then says what
            # the model's windows really do (its windower applies it either way).
            max_gap=args.max_gap
            if args.max_gap is not None or args.time != "column"
            else runner.manifest.input.max_gap,
            channels=args.channels.split(",") if args.channels else None,
        )
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "edge-agent infer")) from None
    # Only the model's channels are read: a label or other column is ignored by name. The
    # source's note on the recording's clock goes into the summary line below instead.
    replay_log = logging.getLogger("edge_agent.sources.replay")
    replay_level = replay_log.level
    replay_log.setLevel(logging.ERROR)
    try:
        source = ReplaySource(replay, runner.manifest.input.channels)
    finally:
        replay_log.setLevel(replay_level)
    sink = JsonlSink(args.output)
    alarm = AlarmConfig(enabled=not args.no_alarms)
    pipeline = ModelPipeline(args.device, runner.manifest.name, runner, alarm, [sink])

    def push(block) -> None:
        pipeline.push(block)
        sink.flush()

    # The pipeline's live "no window" warning would only repeat the error printed at the end.
    pipeline_log = logging.getLogger("edge_agent.pipeline")
    level = pipeline_log.level
    pipeline_log.setLevel(logging.ERROR)
    try:
        source.run(push, threading.Event())
    finally:
        pipeline_log.setLevel(level)
        sink.close()
    reason = pipeline.no_output_reason()
    if reason is not None:  # zero results is a failure, not an empty success
        rate = runner.manifest.input.sample_rate_hz
        if (
            rate
            and not args.sample_rate
            and pipeline.windower.stall_kind() == "discontinuities"
            and args.time == "column"
            and args.time_column not in column_names(source.config.path, args.delimiter)
        ):
            reason += (
                f"; the recording has no '{args.time_column}' column, so rows were taken as one "
                f"per second: give --sample-rate (the model expects {rate:g} Hz)"
            )
        print(f"edge-agent: error: {args.input}: {reason}", file=sys.stderr)
        return 3
    rejected = dict(pipeline.windower.counters)
    inputs = dict(pipeline.input_problems)
    clock = source.describe()
    print(
        f"{pipeline.results} results from {len(source.values)} samples"
        + (f"; recording: {clock}" if clock else "")
        + (f"; rejected {rejected}" if rejected else "")
        + (f"; input health raised {inputs} (input_health lines)" if inputs else ""),
        file=sys.stderr,
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    try:
        from edge_agent.report import write_report
    except ImportError:
        raise ConfigError("the report needs matplotlib: pip install 'edge-pdm[report]'") from None
    print(write_report(Path(args.results), Path(args.output)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from edge_agent.demo.run import run

    return run(args)


def _watch(args: argparse.Namespace) -> int:
    from edge_agent.config import load_agent_config
    from edge_agent.config.mqtt import MqttConfig
    from edge_agent.mqtt.watch import Watcher

    if args.config:
        broker = load_agent_config(args.config).mqtt
        if broker is None:
            raise ConfigError(f"{args.config}: no [mqtt] section to watch")
    else:
        broker = MqttConfig(host=args.host, port=args.port, topic_prefix=args.prefix)
    Watcher(broker, args.device).run(args.interval, args.updates)
    return 0


def _service(args: argparse.Namespace) -> int:
    from edge_agent.service.install import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the agent until SIGTERM/SIGINT (SIGHUP reloads)")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_run)

    p = sub.add_parser("check-config", help="validate a config and load its bundles, then exit")
    p.add_argument("config")
    p.set_defaults(func=_check_config)

    p = sub.add_parser("check-model", help="verify a bundle, run its golden test, summarise it")
    p.add_argument("bundle")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--public-key",
        action="append",
        help="require a signature by this Ed25519 public key (PEM); repeatable",
    )
    p.set_defaults(func=_check_model)

    p = sub.add_parser("infer", help="run a bundle over a recording (CSV/NPZ), JSON lines out")
    p.add_argument("bundle")
    p.add_argument("--input", required=True)
    p.add_argument("--output", default="-", help="JSON-lines file (default: stdout)")
    p.add_argument("--delimiter", help="CSV field separator (default: sniffed)")
    p.add_argument("--time-column", default="ts")
    p.add_argument(
        "--time",
        choices=["column", "index"],
        default="column",
        help="index: row i at i / --sample-rate (default: the model's rate)",
    )
    p.add_argument("--time-format", help="strptime format (default: unix seconds or ISO-8601)")
    p.add_argument("--timezone", default="UTC", help="zone of date-times without an offset")
    p.add_argument("--sample-rate", type=float, help="samples/s when the file has no time column")
    p.add_argument(
        "--max-gap",
        type=float,
        help="seconds: shorter time steps are bridged, longer ones split (default: the model's)",
    )
    p.add_argument("--channels", help="comma-separated columns (default: the model's channels)")
    p.add_argument("--device", default="local")
    p.add_argument("--no-alarms", action="store_true")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    p.add_argument(
        "--public-key",
        action="append",
        help="require a signature by this Ed25519 public key (PEM); repeatable",
    )
    p.set_defaults(func=_infer)

    p = sub.add_parser("watch", help="live status, results and alarms from a broker")
    p.add_argument("-c", "--config", help="take the broker from an agent config's [mqtt]")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--prefix", default="pdm")
    p.add_argument("--device", default="+", help="one device id, or + for all")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between redraws")
    p.add_argument("--updates", type=int, help="stop after this many redraws")
    p.set_defaults(func=_watch)

    p = sub.add_parser("report", help="plot a run's JSON lines as an HTML or PNG report")
    p.add_argument("results", help="JSON lines written by `run` (jsonl sink) or `infer`")
    p.add_argument("-o", "--output", default="report.html", help=".html or .png")
    p.set_defaults(func=_report)

    p = sub.add_parser("demo", help="a simulated machine fails, live over a real MQTT broker")
    from edge_agent.demo import add_arguments as demo_arguments

    demo_arguments(p)
    p.set_defaults(func=_demo)

    p = sub.add_parser("service", help="install, upgrade or remove the systemd service (root)")
    from edge_agent.service.arguments import add_arguments

    add_arguments(p)
    p.set_defaults(func=_service)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli("edge-agent", build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
