"""`edge-agent demo`: the real agent, the committed bundles and a simulated machine whose bearing
fails partway, on a real MQTT broker, watched live by a real subscriber.

The agent runs as its own process with its logs in the output folder, so the terminal shows only
the live view; the broker is the user's, Mosquitto, or an embedded one (see broker.py).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from edge_agent.demo import broker as brokers
from edge_agent.demo.view import LiveView
from edge_agent.errors import DataError

DEVICE = "demo"
PREFIX = "pdm"
MODELS = ("vibration-fault", "vibration-anomaly")
FAULT = "bearing_outer"
PROMISED_DETECTION_S = 5.0  # README: the alarm is raised within this of the injected fault
START_TIMEOUT_S = 60.0


def bundles_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "models"


def agent_config(out: Path, broker: brokers.DemoBroker, fault_at: float) -> str:
    models = "\n".join(
        f'[[models]]\nbundle = "{bundles_dir() / name}"\nsource = "motor"' for name in MODELS
    )
    return f"""# written by `edge-agent demo`
device_id = "{DEVICE}"
shutdown_timeout_s = 5

[log]
format = "logfmt"

[mqtt]
host = "{broker.host}"
port = {broker.port}
protocol = "{broker.protocol}"
topic_prefix = "{PREFIX}"

[[sources]]
kind = "simulator"
id = "motor"
sample_rate_hz = 25600
block_samples = 2560
shaft_hz = 29.5
seed = 42
realtime = true
schedule = [{{ at_s = {fault_at}, fault = "{FAULT}", severity = 0.9 }}]

{models}

[[sinks]]
kind = "mqtt"
spool_dir = "{out / "spool"}"
metrics_interval_s = 2

[[sinks]]
kind = "jsonl"
path = "{out / "results.jsonl"}"
"""


class Terminal:
    """Redraws a block of lines in place on a terminal; elsewhere prints only what changed."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.drawn = 0

    def draw(self, lines: list[str]) -> None:
        if not self.live:
            return
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        width = shutil.get_terminal_size().columns - 1  # a wrapped line would break the redraw
        sys.stdout.write(up + "".join(f"\x1b[2K{line[:width]}\n" for line in lines))
        sys.stdout.flush()
        self.drawn = len(lines)

    def say(self, text: str) -> None:
        """A line that stays (above the live block)."""
        if self.live and self.drawn:
            sys.stdout.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0
        print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()  # the agent resolves relative paths against its config's folder
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").unlink(missing_ok=True)
    terminal = Terminal(live=sys.stdout.isatty() and not args.no_live)
    terminal.say("edge-agent demo: a simulated motor, two int8 models, a real MQTT broker")
    broker = brokers.start(args.broker, "amqtt" if args.embedded_broker else "auto")
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        return _run(args, out, broker, terminal, stop)
    finally:
        signal.signal(signal.SIGINT, previous)
        broker.stop()


def _run(args, out: Path, broker: brokers.DemoBroker, terminal: Terminal, stop) -> int:
    where = {"external": "your broker", "mosquitto": "Mosquitto", "amqtt": "embedded amqtt"}
    terminal.say(f"  broker: {where[broker.kind]} at {broker.url} (MQTT {broker.protocol})")
    terminal.say(
        f"  watch the raw topics:  mosquitto_sub -h {broker.host} -p {broker.port} "
        f"-t '{PREFIX}/{DEVICE}/#' -v"
    )
    config = out / "agent.toml"
    config.write_text(agent_config(out, broker, args.fault_at))
    view = LiveView(broker.host, broker.port, broker.protocol, PREFIX, DEVICE)
    log = (out / "agent.log").open("w")
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,  # Ctrl-C goes to the demo, which stops the agent with SIGTERM
    )
    started = time.monotonic()
    try:
        code = _watch(args, out, agent, view, terminal, stop, started)
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(15)
        log.close()
        view.close()
    if code is not None:
        return code
    return _summary(args, out, view, terminal, time.monotonic() - started)


def _watch(args, out, agent, view: LiveView, terminal: Terminal, stop, started) -> int | None:
    """Live view until the duration ends or Ctrl-C; an exit code if the agent failed."""
    while not view.first_result.is_set():
        waited = time.monotonic() - started
        if agent.poll() is not None or waited > START_TIMEOUT_S:
            terminal.say(f"edge-agent demo: the agent did not start; see {out / 'agent.log'}:")
            for line in (out / "agent.log").read_text().splitlines()[-5:]:
                terminal.say(f"  {line}")
            return 2
        if stop.wait(0.25):
            return None
        terminal.draw([f"  starting: loading models, first window in ... {waited:4.1f} s"])
    terminal.say(f"  first results after {time.monotonic() - started:.1f} s; bearing fault at "
                 f"{args.fault_at:g} s of machine time; Ctrl-C to stop")  # fmt: skip
    reported = 0
    while not stop.wait(0.5):
        if agent.poll() is not None:
            terminal.say(f"edge-agent demo: the agent exited ({agent.returncode}); see agent.log")
            return 2
        with view.lock:
            news = view.alarm_log[reported:]
            reported = len(view.alarm_log)
        for model, state, _ in news:
            terminal.say(f"  {model}: alarm {state}")
        terminal.draw(view.lines())
        if args.duration and time.monotonic() - started >= args.duration:
            break
    return None


def _summary(args, out: Path, view: LiveView, terminal: Terminal, elapsed: float) -> int:
    terminal.say(f"\nSummary after {elapsed:.0f} s")
    missed = []
    with view.lock:
        models = dict(view.models)
    for model in MODELS:
        line = models.get(model)
        if line is None or line.first_window_start is None:
            terminal.say(f"  {model}: no results")
            missed.append(model)
            continue
        fault = line.first_window_start + args.fault_at
        raised = (
            "no alarm"
            if line.raised_at is None
            else f"alarm raised {line.raised_at - fault:+.1f} s from the fault"
        )
        terminal.say(f"  {model}: {line.results} windows processed; {raised}; last {line.latest}")
        if line.raised_at is None or not 0 <= line.raised_at - fault <= PROMISED_DETECTION_S:
            missed.append(model)
    latency = view.latency_ms()
    if latency is not None:
        terminal.say(
            f"  end-to-end latency (last sample of a window -> subscriber): "
            f"p50 {latency[0]:.0f} ms, p99 {latency[1]:.0f} ms"
        )
    report = _report(out, terminal)
    terminal.say(f"  files: {out / 'results.jsonl'}, {out / 'agent.log'}{report}")
    if view.first_result.is_set() and missed and elapsed >= args.fault_at + PROMISED_DETECTION_S:
        terminal.say(
            f"edge-agent demo: the fault was not detected within {PROMISED_DETECTION_S:g} s "
            f"by {', '.join(missed)}"
        )
        return 1
    return 0


def _report(out: Path, terminal: Terminal) -> str:
    try:
        from edge_agent.report import write_report
    except ImportError:
        return " (pip install -e '.[report]' for an HTML report)"
    try:
        write_report(out / "results.jsonl", out / "report.html")
    except DataError as exc:
        terminal.say(f"  no report: {exc}")
        return ""
    return f", {out / 'report.html'}"
