"""`edge-agent demo`: a simulated machine fails, watched live over a real MQTT broker (run.py).

Only the arguments live here, so building the command line imports nothing heavy."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="use this broker, mqtt://host:port")
    parser.add_argument(
        "--embedded-broker", action="store_true", help="the embedded broker even if Mosquitto is"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (0: until Ctrl-C)")
    parser.add_argument("--fault-at", type=float, default=20.0, help="machine seconds")
    parser.add_argument("--out", default="edge-demo", help="folder for results, log, report")
    parser.add_argument("--no-live", action="store_true", help="plain lines, no live redraw")
