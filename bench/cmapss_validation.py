"""Validation figures of C-MAPSS bundles, for choosing between them without the test set.

    python bench/cmapss_validation.py [BUNDLE ...]   (default: models/cmapss-fd001-rul)

Each bundle's training config (verbatim in its manifest) gives its validation engines. The
bundle's own front end and int8 model, on the interpreter the agent would pick, score (1) every
validation window against the capped targets, as training monitors them, and (2) the test
protocol replayed on the validation engines (`truncated_cuts`: random cuts, last window, true
uncapped RUL). Prints a markdown table. Not a test; $CMAPSS_DIR overrides the data folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parity import _config  # bench/ is the script's own directory

from edge_agent.runtime import load_model
from training.datasets import build_task_data
from training.datasets.cmapss import load_engines, split_units, truncated_cuts
from training.metrics import phm08_score, rmse
from training.trainer import _features

ROOT = Path(__file__).resolve().parents[1]


def figures(path: Path) -> list[str]:
    """One table row: bundle, version, all-windows RMSE, truncated RMSE and PHM08 per cut."""
    runner = load_model(path)
    manifest = runner.manifest
    config = _config(manifest)
    data = build_task_data(config)
    if data.fingerprint != manifest.provenance.dataset.fingerprint:
        raise SystemExit(f"{config.dataset.directory} is not the data {path} was trained on")
    engines = load_engines(config.dataset.directory, config.dataset.subset, "train")
    _, val = split_units(engines, config.dataset.validation_fraction, config.seed)
    cuts = truncated_cuts(val, manifest.input.window)

    def predict(windows):
        inputs = _features(manifest.input.features, windows, manifest.input.sample_rate_hz)
        return runner.predict_many(inputs.astype("float32"))[:, 0]

    on_cuts = predict(cuts.windows)
    return [
        path.name,
        manifest.version,
        f"{len(val)} engines, {len(data.val.windows):,} windows",
        f"{rmse(predict(data.val.windows), data.val.targets):.2f}",
        f"{len(cuts.targets)}",
        f"{rmse(on_cuts, cuts.targets):.2f}",
        f"{phm08_score(on_cuts, cuts.targets) / len(cuts.targets):.2f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*", type=Path, default=[ROOT / "models/cmapss-fd001-rul"])
    args = parser.parse_args(argv)
    header = [
        "bundle",
        "version",
        "validation data",
        "all windows RMSE (capped truth)",
        "cuts",
        "truncated RMSE (true RUL)",
        "truncated PHM08 per cut",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for path in args.bundles:
        print("| " + " | ".join(figures(path)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
