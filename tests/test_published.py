"""Published numbers stay true: every committed report's run ids are the ids the current code plans for its
experiment (data fingerprint, protocol, method parameters), so a change that invalidates them fails here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmark.config import load_config
from benchmark.errors import UserError
from benchmark.runner import open_sweep
from benchmark.store import Store
from benchmark.tune.studies import frontier, resolve_tuning

REPO = Path(__file__).resolve().parent.parent
REPORTS = sorted((REPO / "reports").glob("*/results.csv"))
# A few ids pinned literally: a change to run identity (hashing, defaults, fingerprint) must be deliberate.
PINNED = {
    "quick": ['9d143d4cdcc9', '430955ae2ad8', '209c7fc99ff1'],  # ce fold 0, alpha_js(0.1) fold 2, label_smoothing fold 4
}


def _experiment_file(name: str) -> Path:
    for path in sorted((REPO / "experiments").glob("*.yaml")):
        if yaml.safe_load(path.read_text()).get("name") == name:
            return path
    raise AssertionError(f"no experiments/*.yaml is named {name!r}")


def _planned(name: str) -> tuple[dict, list]:
    try:
        cfg = load_config(_experiment_file(name))
    except UserError as exc:
        pytest.skip(f"data of experiment {name} not here: {exc}")
    sweep = open_sweep(cfg, decode_images=False)
    tuning = resolve_tuning(cfg, sweep.prepared.class_names)
    if tuning is None:
        return cfg, sweep.runs
    trials = frontier(sweep, tuning)  # replayed from the committed records: the same draws, the same ids
    assert not trials.pending and not trials.undrawn, f"experiment {name}: its tuning is not finished"
    return cfg, sweep.runs + trials.known


REAL_DATA = ("solder-binary-cpu", "solder-defects-cpu", "solder-defects-tuned-cpu")


def _published(name: str) -> tuple[Path, Path]:
    """(report, records) of the newest published report of experiment `name`: the one under reports/ once it is
    regenerated, until then the archived one (made before portable numerics, see reports/archive/README.md)."""
    if (REPO / "reports" / name / "results.csv").is_file():
        return REPO / "reports" / name, REPO / "reports" / "records" / name
    return REPO / "reports" / "archive" / name / "report", REPO / "reports" / "archive" / name / "records"


def test_there_are_published_reports():
    assert "quick" in {p.parent.name for p in REPORTS}
    for name in REAL_DATA:
        report, records = _published(name)
        assert (report / "results.csv").is_file() and (records / "runs").is_dir(), name


@pytest.mark.parametrize("results", REPORTS, ids=lambda p: p.parent.name)
def test_published_run_ids_are_the_current_plan(results, monkeypatch):
    monkeypatch.chdir(REPO)
    table = pd.read_csv(results)
    name = results.parent.name  # reports/<experiment name>
    # runs shared with another experiment (same computation, same id) keep the name of the one that trained them
    assert name in set(table["experiment"]) and all(_experiment_file(n) for n in set(table["experiment"]))
    cfg, runs = _planned(name)
    assert set(table["run_id"]) == {run.run_id for run in runs}, (
        f"reports/{results.parent.name} no longer matches what the code plans for experiment {name}: "
        f"regenerate it (python -m benchmark run/report experiments/...yaml)")
    assert set(table["status"]) == {"done"}
    for run_id in PINNED.get(name, []):
        assert run_id in set(table["run_id"])
    committed = REPO / "reports" / "records" / name
    records = Store(committed if committed.is_dir() else cfg.run.output)
    if (records.root / "runs").is_dir():
        on_disk = {r["run_id"]: r for r in records.current_records()[0]}
        assert set(on_disk) == set(table["run_id"])
        for row in table.itertuples():
            assert on_disk[row.run_id]["test_accuracy"] == pytest.approx(row.test_accuracy, abs=1e-12)


HEADLINE = "solder-defects-cpu"  # the real-data result on the README; docs/real-data.md shows every one


@pytest.mark.parametrize("name", REAL_DATA)
def test_docs_show_the_committed_real_data_result(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_result", REPO / "scripts" / "readme_result.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report, records = _published(name)
    expected = module.performance_rows(report) + module.pairwise_rows(report) + module.audit_rows(records)
    assert expected, name
    for page in ["README.md"] * (name == HEADLINE) + ["docs/real-data.md"] * (name != HEADLINE):
        lines = (REPO / page).read_text().splitlines()
        missing = [line for line in expected if line not in lines]
        assert not missing, (f"{page} is stale for {name} (python scripts/readme_result.py "
                             f"{report.relative_to(REPO)}): {missing[:3]}")


def test_readme_shows_the_committed_quick_table():
    rows = [line for line in (REPO / "reports" / "quick" / "tables" / "performance.md").read_text().splitlines()
            if line.startswith("|")]
    readme = (REPO / "README.md").read_text().splitlines()
    assert rows and [line for line in rows if line not in readme] == []


COMMITTED = [(REPO / "reports" / "archive" / name / "report", REPO / "reports" / "archive" / name / "records")
             for name in REAL_DATA] + [(REPO / "reports" / name, REPO / "reports" / "records" / name) for name in
                                       sorted(p.parent.name for p in REPORTS)]


@pytest.mark.parametrize(("report", "records"), COMMITTED, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_report_tables_regenerate_from_the_committed_records(report, records, tmp_path):
    """`report` on the committed records gives the committed tables byte for byte (figures aside), archived ones too."""
    from benchmark.cli import main

    name = records.name
    out = tmp_path / name
    assert main(["report", str(records), "--out", str(out), "--no-figures"]) == 0
    files = ["results.csv", "selection.csv", "tables/performance.md", "tables/summary.csv", "stats/pairwise.csv",
             "stats/friedman.csv"] + (["tables/tuning.csv"] if name.endswith("tuned-cpu") else [])
    for file in files:
        assert (out / file).read_bytes() == (report / file).read_bytes(), (
            f"{report.relative_to(REPO)}/{file} does not regenerate: python -m benchmark report {records.relative_to(REPO)}"
            f" --out {report.relative_to(REPO)}")
