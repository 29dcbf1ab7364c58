"""The figures quoted in README.md and docs/results.md are the committed bundles' figures: each
table is parsed and every number is compared with models/*/manifest.json (metrics.values float
and int8), the model files and docs/reports/*/metrics.json, at the precision printed. A retrained
bundle with other figures, or an edited table, fails here until the docs are updated."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from edge_agent.sim.vibration import FAULTS
from tests.conftest import REPO_ROOT

BUNDLES = ("vibration-fault", "vibration-anomaly", "cmapss-fd001-rul")


def _manifest(bundle: str) -> dict:
    return json.loads((REPO_ROOT / "models" / bundle / "manifest.json").read_text())


def _metric(bundle: str, key: str, which: str) -> float:
    """metrics.values[key][which] of a committed bundle (which is "float" or "int8")."""
    return _manifest(bundle)["metrics"]["values"][key][which]


def _sizes(bundle: str) -> tuple[int, int]:
    """(int8 bytes, float bytes): the committed model file, and the float file from its report."""
    report = json.loads((REPO_ROOT / "docs/reports" / bundle / "metrics.json").read_text())
    int8 = (REPO_ROOT / "models" / bundle / "model.tflite").stat().st_size
    assert report["sizes_bytes"]["int8_tflite"] == int8, f"{bundle}: report describes another file"
    return int8, report["sizes_bytes"]["float_tflite"]


def _matches(printed: str, value: float, percent: bool = False) -> bool:
    """True when `value` (a fraction if `percent`) prints as `printed` at its own precision."""
    text = printed.replace(",", "")
    decimals = len(text.split(".")[1]) if "." in text else 0
    shown = 100 * value if percent else value
    return abs(shown - float(text)) <= 0.5 * 10**-decimals + 1e-9


def _table(markdown: str, header: str) -> list[dict[str, str]]:
    """Rows of the markdown table whose header line starts with `header`, keyed by column."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    columns = [c.strip() for c in lines[start].strip().strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == len(columns), line
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


# How README cells name each metric: pattern -> (manifest key, printed as a percentage).
README_FIGURES = {
    r"([\d.,]+) % acc": ("accuracy", True),
    r"AUC ([\d.,]+)": ("roc_auc", False),
    r"false alarms ([\d.,]+) %": ("false_alarm_rate", True),
    r"RMSE ([\d.,]+)": ("rmse", False),
    r"PHM08 ([\d.,]+)": ("phm08_score", False),
}


def _readme_figures(cell: str) -> dict[str, tuple[str, bool]]:
    """{manifest key: (printed number, percent)} for every figure in a README cell; a number
    that no known pattern explains fails, so a new figure cannot go unchecked."""
    found, rest = {}, cell
    for pattern, (key, percent) in README_FIGURES.items():
        for match in re.finditer(pattern, cell):
            found[key] = (match.group(1), percent)
        rest = re.sub(pattern, "", rest)
    assert not re.search(r"\d", rest), f"unexplained figure in {cell!r}"
    return found


def test_readme_reference_table_matches_the_manifests() -> None:
    """Test that every float and int8 figure in README's bundle table is the manifest's."""
    rows = _table((REPO_ROOT / "README.md").read_text(), "| bundle | task | held-out data |")
    assert [row["bundle"].strip("`") for row in rows] == list(BUNDLES)
    checked = 0
    for row in rows:
        bundle = row["bundle"].strip("`")
        for which in ("float", "int8"):
            for key, (printed, percent) in _readme_figures(row[which]).items():
                value = _metric(bundle, key, which)
                assert _matches(printed, value, percent), (bundle, which, key, printed, value)
                checked += 1
    assert checked == 9  # acc x2, AUC x2, false alarms, RMSE x2, PHM08 x2


@pytest.mark.parametrize("bundle", BUNDLES)
def test_readme_targets_say_met_or_missed_truthfully(bundle: str) -> None:
    """Test that each README target's "met"/"missed" follows from the bundle's int8 figure."""
    rows = _table((REPO_ROOT / "README.md").read_text(), "| bundle | task | held-out data |")
    cell = next(r["target"] for r in rows if r["bundle"].strip("`") == bundle)
    match = re.fullmatch(r"(?:(\w+) )?(>=|<=) ([\d.]+)( %)?: \**(met|missed)\**", cell)
    assert match, cell
    name, op, bound, percent, verdict = match.groups()
    key = {None: "accuracy", "AUC": "roc_auc", "RMSE": "rmse"}[name]
    value = _metric(bundle, key, "int8") * (100 if percent else 1)
    met = value >= float(bound) if op == ">=" else value <= float(bound)
    assert verdict == ("met" if met else "missed"), (bundle, cell, value)


def test_readme_size_ratio_range_matches_the_files() -> None:
    """Test README's "int8 files are A-B % of the float ones" against the file sizes."""
    text = " ".join((REPO_ROOT / "README.md").read_text().split())
    low, high = map(
        int, re.search(r"int8 files are (\d+)-(\d+) % of the float ones", text).groups()
    )
    ratios = [round(100 * int8 / flt) for int8, flt in map(_sizes, BUNDLES)]
    assert (low, high) == (min(ratios), max(ratios)), ratios
    assert "(target 30 %: missed" in text and min(ratios) > 30


# docs/results.md metric names -> (manifest key, printed as a percentage).
RESULTS_METRICS = {
    "accuracy": ("accuracy", True),
    "macro F1": ("macro_f1", False),
    "ROC AUC": ("roc_auc", False),
    "false-alarm rate at threshold": ("false_alarm_rate", True),
    "detection rate at threshold": ("detection_rate", True),
    "RMSE": ("rmse", False),
    "PHM08 score": ("phm08_score", False),
}


def _number(cell: str, percent: bool) -> str:
    match = re.fullmatch(r"([\d.,]+)( %)?", cell)
    assert match and bool(match.group(2)) == percent, cell
    return match.group(1)


def test_results_metric_table_matches_the_manifests() -> None:
    """Test every float/int8 figure of docs/results.md's main table against the manifests."""
    rows = _table((REPO_ROOT / "docs/results.md").read_text(), "| bundle | held-out data | metric")
    bundle = None
    seen: dict[str, set[str]] = {}
    for row in rows:
        if row["bundle"]:
            bundle = re.match(r"`([\w-]+)`", row["bundle"]).group(1)
        assert bundle in BUNDLES
        name = next(n for n in RESULTS_METRICS if row["metric"].startswith(n))
        key, percent = RESULTS_METRICS[name]
        for which in ("float", "int8"):
            printed = _number(row[which], percent)
            value = _metric(bundle, key, which)
            assert _matches(printed, value, percent), (bundle, key, which, printed, value)
        seen.setdefault(bundle, set()).add(key)
    # Every metric a bundle records is in the table.
    assert seen == {b: set(_manifest(b)["metrics"]["values"]) for b in BUNDLES}


def test_results_held_out_data_and_threshold_match_the_training_configs() -> None:
    """Test the window counts and the anomaly quantile that docs/results.md states."""
    text = " ".join((REPO_ROOT / "docs/results.md").read_text().split())

    def dataset(bundle: str) -> dict:
        return tomllib.loads(_manifest(bundle)["provenance"]["config"])["dataset"]

    fault = dataset("vibration-fault")
    per_class = fault["test_records_per_class"] * fault["windows_per_record"]
    classes = len(_manifest("vibration-fault")["output"]["labels"])
    assert f"| {classes * per_class:,} windows, unseen seeds" in text
    anomaly = dataset("vibration-anomaly")
    per_class = anomaly["test_records_per_class"] * anomaly["windows_per_record"]
    faults = len(anomaly.get("faults", FAULTS)) - 1  # all but healthy
    assert f"| {per_class:,} healthy + {faults * per_class:,} faulty windows" in text
    quantile = _manifest("vibration-anomaly")["output"]["threshold_quantile"]
    assert f"(q = {quantile:g} of held-out healthy)" in text


def test_results_int8_versus_float_sentence() -> None:
    """Test "accuracy within A pt, AUC within B; RUL RMSE within N %" against the manifests."""
    text = " ".join((REPO_ROOT / "docs/results.md").read_text().split())
    pattern = r"accuracy within ([\d.]+) pt, AUC within ([\d.]+); RUL RMSE within (\d+) %"
    match = re.search(pattern, text)
    assert match, "the int8 vs float sentence changed; update this test with it"
    points, auc, percent = (float(group) for group in match.groups())
    for bundle, key, bound in (
        ("vibration-fault", "accuracy", points / 100),
        ("vibration-anomaly", "roc_auc", auc),
    ):
        assert abs(_metric(bundle, key, "float") - _metric(bundle, key, "int8")) <= bound
    flt, int8 = (_metric("cmapss-fd001-rul", "rmse", w) for w in ("float", "int8"))
    assert abs(int8 - flt) / flt <= percent / 100


def test_results_size_table_matches_the_files() -> None:
    """Test docs/results.md's int8 and float byte counts and ratios against the files."""
    rows = _table((REPO_ROOT / "docs/results.md").read_text(), "| bundle | parameters | int8 |")
    assert [row["bundle"] for row in rows] == list(BUNDLES)
    for row in rows:
        int8, flt = _sizes(row["bundle"])
        assert row["int8"] == f"{int8:,} B" and row["float"] == f"{flt:,} B", row
        assert row["ratio"] == f"{round(100 * int8 / flt)} %", row
