"""`edge-train`: train, evaluate and inspect model bundles from the workstation."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from edge_agent.cli_common import run_cli
from edge_agent.runtime.backends import BACKEND_CHOICES


def _train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.trainer import train

    config, text = load_config(args.config)
    if args.epochs is not None:
        config = config.model_copy(
            update={"model": config.model.model_copy(update={"epochs": args.epochs})}
        )
    outcome = train(config, text, Path(args.models), Path(args.reports))
    print(f"{outcome.bundle_dir}: int8 {outcome.int8_eval.values}")
    return 0


def _import(args: argparse.Namespace) -> int:
    """A bundle from a full-int8 model trained elsewhere; no TensorFlow (training/importer.py)."""
    from edge_agent.manifest import AnomalyOutput
    from training.importer import ImportRequest, import_model

    def names(text: str | None) -> list[str] | None:
        return None if text is None else [part.strip() for part in text.split(",")]

    def path(text: str | None) -> Path | None:
        return None if text is None else Path(text)

    outcome = import_model(
        ImportRequest(
            model=Path(args.model),
            task=args.task,
            channels=names(args.channels) or [],
            window=args.window,
            hop=args.hop,
            golden_from=Path(args.golden_from),
            sample_rate_hz=args.sample_rate,
            features=path(args.features),
            name=args.name,
            version=args.version,
            description=args.description,
            out=path(args.out),
            labels=names(args.labels),
            threshold=args.threshold,
            calibrate=path(args.calibrate),
            quantile=args.quantile,
            units=args.units,
            cap=args.cap,
            backend=args.backend,
        )
    )
    manifest = outcome.runner.manifest
    spec, tensors = manifest.input, manifest.tensors
    rate = f"{spec.sample_rate_hz:g} Hz" if spec.sample_rate_hz else "per cycle"
    steps = " -> ".join(step.op for step in spec.features) or "raw window"
    print(
        f"{outcome.bundle_dir}: imported {args.model} (sha256 {manifest.model_sha256[:16]}...) "
        f"as {manifest.task} model {manifest.name} {manifest.version}"
    )
    print(f"  input     {spec.channels} at {rate}, window {spec.window}, hop {spec.hop}")
    print(
        f"  tensors   {steps} -> input {tensors.input.shape} {tensors.input.dtype}, "
        f"output {tensors.output.shape} {tensors.output.dtype}"
    )
    output = manifest.output
    if isinstance(output, AnomalyOutput) and outcome.calibration_windows is not None:
        print(
            f"  threshold {output.threshold:.6g} at quantile {output.threshold_quantile:g} of "
            f"{outcome.calibration_windows} windows of {args.calibrate}"
        )
    elif isinstance(output, AnomalyOutput):
        print(f"  threshold {output.threshold:.6g} (given)")
    print(
        f"  golden    first window of {args.golden_from}; loaded on {outcome.runner.backend}: "
        f"hash ok, tensors ok, golden max error {outcome.golden_error:.3g}"
    )
    return 0


def _reference(args: argparse.Namespace) -> int:
    """Write the training reference into a bundle trained before manifests carried one: the
    same statistics training writes, from the same data build."""
    from edge_agent.errors import BundleError
    from edge_agent.runtime import load_model
    from training.config import load_config
    from training.datasets import build_task_data
    from training.trainer import channel_reference, write_manifest

    manifest = load_model(args.bundle).manifest
    config, _ = load_config(args.config)
    data = build_task_data(config)
    if data.channels != manifest.input.channels:
        raise BundleError(
            f"{args.bundle}: channels {manifest.input.channels} differ from the data of "
            f"{args.config} ({data.channels})"
        )
    reference = channel_reference(data)
    updated = manifest.model_copy(
        update={"input": manifest.input.model_copy(update={"reference": reference})}
    )
    write_manifest(Path(args.bundle), updated)
    load_model(args.bundle)  # verified again as a device reads it
    for channel, ref in reference.items():
        print(
            f"{channel}: mean {ref.mean:.6g}, std {ref.std:.6g}, "
            f"range [{ref.min:.6g}, {ref.max:.6g}], window std {ref.window_std:.6g}"
        )
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from edge_agent.signing import generate

    private, public, kid = generate(Path(args.out), args.name)
    print(f"key {kid}: private {private} (mode 0600, keep it off devices), public {public}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from edge_agent.runtime import load_model
    from edge_agent.signing import sign

    load_model(args.bundle)  # never sign a bundle that does not verify
    kid = sign(Path(args.bundle), Path(args.key))
    print(f"{args.bundle}: signed with key {kid} ({Path(args.bundle) / 'manifest.sig'})")
    return 0


def _evaluation_data(args: argparse.Namespace, manifest):
    """Test windows from a training config's dataset or from a CSV/NPZ recording."""
    path = Path(args.data)
    if path.suffix == ".toml":
        from training.config import load_config
        from training.datasets import build_task_data

        config, _ = load_config(path)
        return build_task_data(config).test
    from training.datasets.table import evaluation_split

    return evaluation_split(
        path,
        manifest.task,
        list(manifest.input.channels),
        manifest.input.window,
        manifest.input.hop,
        labels=getattr(manifest.output, "labels", None),
        label_column=args.label_column,
        normal_label=args.normal_label,
        unit_column=args.unit_column,
        rul_column=args.rul_column,
    )


def _evaluate(args: argparse.Namespace) -> int:
    from edge_agent.errors import BundleError
    from edge_agent.runtime import load_model
    from training.evaluation import evaluate

    runner = load_model(args.bundle, backend=args.backend)
    manifest = runner.manifest
    if manifest.input.baseline is not None:  # not silently wrong scores: say what works
        raise BundleError(
            f"{args.bundle}: evaluate does not apply the per-stream input.baseline yet; "
            "replay the recording with `edge-agent infer` (it does) or see the training report"
        )
    split = _evaluation_data(args, manifest)
    inputs = manifest.input.pipeline().batch(split.windows)
    outputs = runner.predict_many(inputs)
    result = evaluate(
        manifest.task,
        inputs,
        outputs,
        split.targets,
        labels=getattr(manifest.output, "labels", None),
        threshold=getattr(manifest.output, "threshold", None),
        tags=split.tags or None,
        anomaly=manifest.output if manifest.task == "anomaly" else None,  # type: ignore[arg-type]
    )
    if args.predictions:
        _write_predictions(Path(args.predictions), manifest, split, result.predictions)
    if args.json:
        print(
            json.dumps(
                {
                    "bundle": str(args.bundle),
                    "backend": runner.backend,
                    "examples": len(inputs),
                    "metrics": result.values,
                    "tables": result.tables,
                },
                indent=1,
            )
        )
    else:
        print(f"{manifest.name} {manifest.version} on {runner.backend}, {len(inputs)} windows")
        for key, value in result.values.items():
            print(f"  {key:18s} {value:.4f}")
    return 0


def _write_predictions(path: Path, manifest, split, predictions: np.ndarray) -> None:
    labels = getattr(manifest.output, "labels", None)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "tag", "target", "prediction"])
        for i, (target, prediction) in enumerate(zip(split.targets, predictions)):
            tag = split.tags[i] if split.tags else ""
            shown = labels[int(prediction)] if labels else f"{float(prediction):.6g}"
            writer.writerow([i, tag, f"{float(target):g}", shown])


def _inspect(args: argparse.Namespace) -> int:
    from edge_agent.describe import inspect

    print(inspect(args.bundle, args.backend, as_json=args.json))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    """Roll an update out to devices over MQTT v5, canaries first (training/deploy.py)."""
    from training.deploy import DeployRequest, deploy

    def path(text: str | None) -> Path | None:
        return None if text is None else Path(text)

    devices = None if args.devices is None else [d.strip() for d in args.devices.split(",")]
    return deploy(
        DeployRequest(
            broker=args.broker,
            source=args.source,
            model=args.model,
            devices=devices,
            discover=args.discover,
            canary=args.canary,
            batch=args.batch,
            timeout_s=args.timeout,
            prefix=args.prefix,
            bundle=path(args.bundle),
            public_keys=[Path(p) for p in args.public_key],
            username=args.username,
            password_file=path(args.password_file),
            tls_ca=path(args.tls_ca),
            discover_wait_s=args.discover_wait,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train, quantize, evaluate, write bundle and report")
    p.add_argument("config", help="experiment config (TOML), e.g. training/configs/*.toml")
    p.add_argument("--models", default="models", help="bundle output folder (default: models)")
    p.add_argument("--reports", default="reports", help="report output folder (default: reports)")
    p.add_argument("--epochs", type=int, help="override model.epochs (quick runs)")
    p.set_defaults(func=_train)

    backend = {
        "choices": BACKEND_CHOICES,
        "default": "auto",
        "help": "interpreter backend (default: auto)",
    }
    p = sub.add_parser("evaluate", help="run a bundle's int8 model on labelled data")
    p.add_argument("bundle")
    p.add_argument(
        "--data",
        required=True,
        help="training config (.toml, uses its test split) or a CSV/NPZ recording",
    )
    p.add_argument("--label-column", default=None)
    p.add_argument("--normal-label", default="normal")
    p.add_argument("--unit-column", default="unit")
    p.add_argument("--rul-column", default="rul")
    p.add_argument("--predictions", help="write per-window predictions to this CSV")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--backend", **backend)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "import", help="make a bundle from a full-int8 .tflite trained elsewhere (no TensorFlow)"
    )
    p.add_argument("model", help="the .tflite file (int8 input and output tensors)")
    p.add_argument("--task", required=True, choices=["anomaly", "classification", "rul"])
    p.add_argument("--channels", required=True, help="comma-separated, in model input order")
    p.add_argument("--window", required=True, type=int, help="samples per window")
    p.add_argument("--hop", required=True, type=int, help="samples between window starts")
    p.add_argument("--sample-rate", type=float, help="samples/s (omit for per-cycle data)")
    p.add_argument("--features", help="JSON list of front-end steps (default: the raw window)")
    p.add_argument(
        "--golden-from",
        required=True,
        help="CSV/NPZ recording: its first window is the golden test",
    )
    p.add_argument("--labels", help="classification: comma-separated class names, output order")
    threshold = p.add_mutually_exclusive_group()
    threshold.add_argument("--threshold", type=float, help="anomaly: the threshold, as given")
    threshold.add_argument(
        "--calibrate", help="anomaly: CSV/NPZ of normal operation; threshold at --quantile"
    )
    p.add_argument("--quantile", type=float, help="of --calibrate's window scores (default 0.99)")
    p.add_argument("--units", choices=["cycles", "hours", "days"], help="rul: output units")
    p.add_argument("--cap", type=float, help="rul: the value targets were clipped at")
    p.add_argument("--name", help="bundle name (default: the model file's stem)")
    p.add_argument("--version", default="1.0.0", help="MAJOR.MINOR.PATCH (default: 1.0.0)")
    p.add_argument("--description", default="")
    p.add_argument("--out", help="bundle folder (default: models/<name>)")
    p.add_argument("--backend", **backend)
    p.set_defaults(func=_import)

    p = sub.add_parser(
        "reference", help="add the per-channel training reference to an older bundle"
    )
    p.add_argument("config", help="the training config the bundle was trained with")
    p.add_argument("bundle")
    p.set_defaults(func=_reference)

    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    p.add_argument("--out", required=True, help="folder for <name>.key and <name>.pub")
    p.add_argument("--name", default="signing", help="file name stem (default: signing)")
    p.set_defaults(func=_keygen)

    p = sub.add_parser("sign", help="sign a bundle's manifest (writes manifest.sig)")
    p.add_argument("bundle")
    p.add_argument("--key", required=True, help="private key from `edge-train keygen`")
    p.set_defaults(func=_sign)

    p = sub.add_parser("inspect", help="verify a bundle and print its manifest summary")
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true")
    p.add_argument("--backend", **backend)
    p.set_defaults(func=_inspect)

    p = sub.add_parser(
        "deploy", help="roll a model update out to devices over MQTT, canaries first"
    )
    p.add_argument("bundle", nargs="?", help="verify this bundle locally first (name, version)")
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--username")
    p.add_argument("--password-file", help="file holding the broker password")
    p.add_argument("--tls-ca", help="CA bundle for an mqtts:// broker (default: system store)")
    p.add_argument("--model", help="the model id on the devices (default: the bundle's name)")
    p.add_argument(
        "--source", required=True, help="what each device fetches: a folder on it or https URL"
    )
    targets = p.add_mutually_exclusive_group(required=True)
    targets.add_argument("--devices", help="comma-separated device ids, canaries first")
    targets.add_argument(
        "--discover", help="PREFIX/+ : devices whose retained status lists the model"
    )
    p.add_argument("--discover-wait", type=float, default=3.0, help="seconds (default: 3)")
    p.add_argument("--canary", type=int, default=1, help="devices updated first (default: 1)")
    p.add_argument("--batch", type=int, help="then this many at a time (default: all at once)")
    p.add_argument("--timeout", type=float, default=300.0, help="s per device (default: 300)")
    p.add_argument("--prefix", help="topic prefix (default: pdm, or that of --discover)")
    p.add_argument(
        "--public-key", action="append", default=[], help="verify BUNDLE's signature (repeat)"
    )
    p.set_defaults(func=_deploy)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli("edge-train", build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
