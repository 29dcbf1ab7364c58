"""`edge-agent service` arguments, apart from the installer (install.py), so building the
agent's command line does not load the installer into a running agent."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["install", "uninstall"])
    parser.add_argument("--root", default="/", help="install into this root, not the system")
    parser.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    parser.add_argument("--wheelhouse", help="offline: install from wheels in this folder")
    parser.add_argument(
        "--system-site-packages",
        action="store_true",
        help="let the virtualenv use the system's packages (e.g. Debian's python3-numpy)",
    )
    parser.add_argument("--purge", action="store_true", help="uninstall: remove config and state")
    parser.add_argument("--source", help="the edge-pdm checkout to install (default: this one)")
