"""What both command-line tools share: expected failures are one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import sys

from edge_agent.errors import EdgeError


def run_cli(prog: str, parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Run a parsed subcommand; an expected failure is one line on stderr and exit status 2.

    As a process's entry point (argv None) it first keeps the interpreters' start-up noise off
    stderr; called in-process (tests) it leaves the caller's stderr alone."""
    if argv is None:
        from edge_agent.quiet import filter_native_stderr, quiet_tensorflow

        quiet_tensorflow()
        filter_native_stderr()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EdgeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
