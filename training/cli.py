"""`edge-train`: train, evaluate and inspect model bundles from the workstation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.errors import EdgeError


def _train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.trainer import train

    config, text = load_config(args.config)
    if args.epochs is not None:
        config = config.model_copy(update={"model": config.model.model_copy(
            update={"epochs": args.epochs})})
    outcome = train(config, text, Path(args.models), Path(args.reports))
    print(f"{outcome.bundle_dir}: int8 {outcome.int8_eval.values}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train, quantize, evaluate, write bundle and report")
    p.add_argument("config", help="experiment config (TOML), e.g. training/configs/*.toml")
    p.add_argument("--models", default="models", help="bundle output folder (default: models)")
    p.add_argument("--reports", default="reports", help="report output folder (default: reports)")
    p.add_argument("--epochs", type=int, help="override model.epochs (quick runs)")
    p.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgeError as exc:
        print(f"edge-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
