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


def _table(args: argparse.Namespace, channels: list[str], manifest=None):
    """How to read `--data` (a recording) and its labels, from the command line; the model's
    sample rate and max_gap when a bundle is given, so its clock breaks where the model's do.
    Without channels (scoring) no channel is read."""
    from pydantic import ValidationError

    from edge_agent.errors import ConfigError
    from edge_agent.recording import column_names
    from edge_agent.schema import describe_validation_error
    from training.config import TableData

    path = Path(args.data)
    time_column = args.time_column
    if time_column not in column_names(path, args.delimiter):
        time_column = None  # rows in order, as the replay source takes them
    spec = manifest.input if manifest is not None else None
    try:
        table = TableData(
            kind="table",
            train=[path],
            channels=channels or ["unread"],
            delimiter=args.delimiter,
            time_column=time_column,
            time_format=args.time_format,
            timezone=args.timezone,
            sample_rate_hz=spec.sample_rate_hz if spec is not None else None,
            max_gap=spec.max_gap if spec is not None and time_column else None,
            label_column=args.label_column,
            label_windows=Path(args.labels) if args.labels else None,
            normal_label=args.normal_label,
            probation=args.probation,
        )
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "edge-train")) from None
    # Scoring reads no channel: the key is required in a config, so it is dropped after checks.
    return table if channels else table.model_copy(update={"channels": []})


def _evaluation_data(args: argparse.Namespace, manifest):
    """Test windows from a training config's dataset or from a CSV/NPZ recording, with the
    rows of each stream (recording) they come from."""
    path = Path(args.data)
    if path.suffix == ".toml":
        from training.config import load_config
        from training.datasets import build_task_data

        config, _ = load_config(path)
        data = build_task_data(config)
        return data.test, data.streams
    from training.datasets.table import evaluation_split

    return evaluation_split(
        _table(args, list(manifest.input.channels), manifest),
        manifest.task,
        manifest.input.window,
        manifest.input.hop,
        labels=getattr(manifest.output, "labels", None),
        unit_column=args.unit_column,
        rul_column=args.rul_column,
    )


def _evaluate(args: argparse.Namespace) -> int:
    from edge_agent.runtime import load_model
    from training.anomaly import baseline_split
    from training.evaluation import evaluate_split

    runner = load_model(args.bundle, backend=args.backend)
    manifest = runner.manifest
    split, streams = _evaluation_data(args, manifest)
    # Each recording standardised by its own baseline, as the agent does per stream.
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    split = baseline_split(split, streams, manifest.input.baseline, "evaluate", say)
    inputs = manifest.input.pipeline().batch(split.windows)
    result = evaluate_split(
        manifest.task,
        split,
        inputs,
        runner.predict_many(inputs),
        labels=getattr(manifest.output, "labels", None),
        anomaly=manifest.output if manifest.task == "anomaly" else None,  # type: ignore[arg-type]
    )
    values = result.report or result.values
    if args.predictions:
        _write_predictions(Path(args.predictions), manifest, split.evaluated(), result)
    examples = len(result.predictions)
    what = f"{manifest.name} {manifest.version} on {runner.backend}, {examples} windows"
    _print_report(
        args,
        what,
        values,
        tables=result.tables,
        extra={
            "bundle": str(args.bundle),
            "backend": runner.backend,
            "examples": examples,
        },
    )
    return 0


def _print_report(
    args: argparse.Namespace, what: str, values: dict, tables: dict, extra: dict
) -> None:
    from training.timeline import COUNTS

    if args.json:
        print(json.dumps({**extra, "metrics": values, "tables": tables}, indent=1))
        return
    print(what)
    for key, value in values.items():
        shown = f"{value:.0f}" if key in COUNTS else f"{value:.4f}"
        print(f"  {key:24s} {shown}")


def _write_predictions(path: Path, manifest, split, result) -> None:
    """One row per evaluated window; with a timeline, its first and last sample's time as
    written in the recording, and for anomaly models the score, threshold, verdict and label
    (0/1, by the last sample): the agent's score, threshold and is_anomaly. Scores are written
    with repr: the exact float, for comparing with the agent's."""
    labels = getattr(manifest.output, "labels", None)
    timeline = split.timeline
    anomaly = manifest.task == "anomaly"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        where = ["start", "end"] if timeline is not None else []
        if anomaly:
            writer.writerow(["index", *where, "score", "threshold", "verdict", "label", "tag"])
        else:
            writer.writerow(["index", *where, "tag", "target", "prediction"])
        threshold = getattr(manifest.output, "threshold", None)
        for i, (target, prediction) in enumerate(zip(split.targets, result.predictions)):
            tag = split.tags[i] if split.tags else ""
            span = []
            if timeline is not None:
                span = [timeline.stamp(int(split.starts[i])), timeline.stamp(int(split.ends[i]))]
            if anomaly:
                verdict = int(result.verdicts[i])
                score = repr(float(prediction))
                writer.writerow([i, *span, score, repr(threshold), verdict, int(target), tag])
                continue
            shown = labels[int(prediction)] if labels else f"{float(prediction):.6g}"
            writer.writerow([i, *span, tag, f"{float(target):g}", shown])


def _score(args: argparse.Namespace) -> int:
    """The evaluate report from an agent's published results (JSON lines)."""
    from edge_agent.errors import DataError
    from training.timeline import anomaly_report

    path = Path(args.results)
    results = _read_results(path, args.model)
    data = Path(args.data)
    if data.suffix == ".toml":
        from training.config import load_config
        from training.datasets import build_task_data

        timeline = build_task_data(load_config(data)[0]).test.timeline
        if timeline is None:
            raise DataError(data, "score needs a dataset of kind 'table' (a recording)")
    else:
        from training.datasets.table import evaluation_timeline

        timeline = evaluation_timeline(_table(args, []))
    ends = timeline.locate(np.array([r["window"]["end"] for r in results]))
    matched = ends >= 0
    if not matched.any():
        raise DataError(path, f"no result's window end is a sample time of {data}")
    scores = np.array([float(r["score"]) for r in results])
    verdicts = np.array([bool(r["is_anomaly"]) for r in results])
    values = anomaly_report(timeline, ends[matched], scores[matched], verdicts[matched])
    model = results[0]["model"]
    unmatched = int(np.count_nonzero(~matched))
    what = f"{model['name']} {model['version']}: {len(results)} results" + (
        f" ({unmatched} outside {data}, not scored)" if unmatched else ""
    )
    _print_report(
        args,
        what,
        values,
        tables={},
        extra={
            "results": str(path),
            "model": model,
            "examples": len(results),
            "unmatched": unmatched,
        },
    )
    return 0


def _read_results(path: Path, model: str | None) -> list[dict]:
    """The anomaly results of one model in a JSON-lines file, in sequence order."""
    from edge_agent.errors import DataError

    if not path.is_file():
        raise DataError(path, "file not found")
    results: dict[str, list[dict]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                raise DataError(path, "not a JSON object", line=number) from None
            if not isinstance(event, dict) or event.get("type") != "result":
                continue  # alarms, input health and other events
            if event.get("task") != "anomaly":
                raise DataError(
                    path,
                    f"result of task {event.get('task')!r}: score needs anomaly results",
                    line=number,
                )
            results.setdefault(event["model"]["id"], []).append(event)
    if not results:
        raise DataError(path, "no results")
    if model is None and len(results) > 1:
        raise DataError(path, f"results of several models {sorted(results)}: pick one with --model")
    chosen = model if model is not None else next(iter(results))
    if chosen not in results:
        raise DataError(path, f"no results of model '{chosen}'; models are {sorted(results)}")
    return sorted(results[chosen], key=lambda r: r["seq"])


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


def _labelled_data_options(p: argparse.ArgumentParser) -> None:
    """How a recording given as --data is read and labelled (the table dataset's keys)."""
    p.add_argument("--label-column", default=None, help="per-sample labels in the recording")
    p.add_argument(
        "--labels", help="labelled anomaly windows: NAB windows.json or a CSV with start,end"
    )
    p.add_argument("--normal-label", default="normal")
    p.add_argument(
        "--probation",
        type=float,
        help="leading fraction of the recording that is never scored (NAB: 0.15)",
    )
    p.add_argument("--time-column", default="ts", help="(default: ts; absent: row order)")
    p.add_argument("--time-format", help="strptime format of the time column")
    p.add_argument("--timezone", default="UTC", help="of date-times without an offset")
    p.add_argument("--delimiter", help="CSV separator (default: sniffed)")


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
    _labelled_data_options(p)
    p.add_argument("--unit-column", default="unit")
    p.add_argument("--rul-column", default="rul")
    p.add_argument("--predictions", help="write per-window predictions to this CSV")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--backend", **backend)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "score", help="the evaluate report from an agent's JSON-lines anomaly results"
    )
    p.add_argument("results", help="JSON lines the agent wrote (jsonl sink, edge-agent infer)")
    p.add_argument(
        "--data",
        required=True,
        help="training config (.toml, its test timeline) or the replayed CSV/NPZ recording",
    )
    p.add_argument("--model", help="the model id, when the file holds several models' results")
    _labelled_data_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_score)

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
