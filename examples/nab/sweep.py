"""NAB protocol figures for every anomaly architecture and threshold policy, through the CLI.

Each variant is the shipped config of a recording (examples/nab/*.toml) with its `[model]`,
`[output]` and feature steps replaced, trained with `edge-train train` like a user would; the
table is read from each run's report (the int8 model's figures on the scored part). Settings were
fixed before any run; nothing is chosen on the scored part. Takes ~15-30 min on 2 cores.

    python examples/nab/sweep.py [--out /var/tmp/nab-sweep] [--only dense] [--recording ambient]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORDINGS = {
    "machine": HERE / "machine_temperature.toml",
    "ambient": HERE / "ambient_temperature.toml",
}

ARCHITECTURES = {
    "dense": '[[input.features]]\nop = "flatten"\n\n[model]\narchitecture = "dense_autoencoder"\n'
    "dense_units = [16, 4]\n",
    "conv1d": '[model]\narchitecture = "conv1d_autoencoder"\nfilters = [8, 16]\nkernel_size = 3\n',
    "lstm": '[model]\narchitecture = "lstm_autoencoder"\ndense_units = [16, 4]\n',
}
TRAINING = "epochs = 200\nbatch_size = 32\nlearning_rate = 0.001\npatience = 20\n"
POLICIES = {
    "q0.99 of validation": "threshold_quantile = 0.99\n",
    "q0.99 of train+validation": 'threshold_quantile = 0.99\ncalibrate_on = "train+validation"\n',
    "q0.99 x 1.5": "threshold_quantile = 0.99\nthreshold_margin = 1.5\n",
    "q0.99, EWMA 0.2": 'threshold_quantile = 0.99\nsmoothing = { method = "ewma", alpha = 0.2 }\n',
}
COLUMNS = (
    "roc_auc",
    "events_detected",
    "events",
    "false_alarms_per_day",
    "point_precision",
    "point_recall",
    "point_f1",
)


def variant(base: Path, arch: str, policy: str) -> str:
    """The shipped config up to its feature steps, with this architecture and policy."""
    text = base.read_text()
    head = text[: re.search(r"^\[\[input\.features\]\]|^\[model\]", text, re.M).start()]
    head = head.replace('"../../../shared', f'"{(HERE / "../../../shared").resolve()}')
    return f"{head}{ARCHITECTURES[arch]}{TRAINING}\n[output]\n{POLICIES[policy]}"


def run(out: Path, recording: str, arch: str, policy: str) -> dict:
    slug = re.sub(r"[^a-z0-9]+", "-", f"{recording}-{arch}-{policy}".lower()).strip("-")
    config = out / "configs" / f"{slug}.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        variant(RECORDINGS[recording], arch, policy).replace(
            'name = "nab-', f'name = "{slug}-nab-', 1
        )
    )
    log = out / "logs" / f"{slug}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        code = subprocess.call(
            [
                sys.executable,
                "-m",
                "training.cli",
                "train",
                str(config),
                "--models",
                str(out / "models"),
                "--reports",
                str(out / "reports"),
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    if code:
        return {"error": f"exit {code}, see {log}"}
    reports = list((out / "reports").glob(f"{slug}-nab-*/metrics.json"))
    return json.loads(reports[0].read_text())["int8"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/var/tmp/nab-sweep"))
    parser.add_argument("--only", choices=list(ARCHITECTURES), action="append")
    parser.add_argument("--recording", choices=list(RECORDINGS), action="append")
    args = parser.parse_args()
    print(
        "| recording | architecture | threshold | ROC AUC | windows detected | false alarms/day "
        "| point precision | point recall | point F1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for recording in args.recording or RECORDINGS:
        for arch in args.only or ARCHITECTURES:
            for policy in POLICIES:
                m = run(args.out, recording, arch, policy)
                if "error" in m:
                    print(f"| {recording} | {arch} | {policy} | {m['error']} |||||| ", flush=True)
                    continue
                cells = [f"{m.get(k, float('nan')):.3f}" for k in ("roc_auc",)]
                cells.append(f"{m['events_detected']:.0f} / {m['events']:.0f}")
                cells += [f"{m[k]:.3f}" for k in COLUMNS[3:]]
                print(
                    f"| {recording} | {arch} | {policy} | " + " | ".join(cells) + " |", flush=True
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
