"""`python -m benchmark report`: tables, hyper-parameter selection, statistics, figures, HTML, CLI."""

from __future__ import annotations

import hashlib
import html
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from benchmark.cli import main as cli_main
from benchmark.crash import CRASH_ENV
from benchmark.errors import UserError
from benchmark.report import build_report
from benchmark.store import Store

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["good", "insufficient", "excess"]
SETTINGS = [("ce", {})] + [("alpha_js", {"alpha": a, "beta": 1.0}) for a in (0.1, 0.5, 0.9)] + [
    ("label_smoothing", {"epsilon": 0.1})
]
BACKBONES = ["resnet18", "efficientnet_b0"]
METRICS = ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "macro_f1", "auroc", "nll", "ece", "brier",
           "entropy"]


def _label(method: str, params: dict) -> str:
    inner = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{method}({inner})" if inner else method


def make_store(root: Path, *, folds: int = 5, repeats: int = 1, settings=SETTINGS, backbones=BACKBONES, classes=CLASSES, seed: int = 0,
               failed: frozenset = frozenset(), skip: frozenset = frozenset(), fingerprint=lambda i: "data-fp-1",
               n_test: int = 24, epochs: int = 4, audit: bool = True, positive: bool = True) -> pd.DataFrame:
    """Write a results store with known numbers; return the records as a DataFrame (the test's ground truth).

    `positive`: the config names the second class as data.positive (False: data.positive is null)."""
    rng = np.random.default_rng(seed)
    store = Store(root)
    k = len(classes)
    records = []
    for method, params in settings:
        label = _label(method, params)
        effect = {"ce": 0.0, "alpha_js": 0.02 + 0.02 * params.get("alpha", 0), "label_smoothing": 0.01}[method]
        for b, backbone in enumerate(backbones):
            for repeat, fold in [(r, f) for r in range(repeats) for f in range(folds)]:
                key = (label, backbone, fold) if repeats == 1 else (label, backbone, fold, repeat)
                if key in skip:
                    continue
                run_id = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
                record = {
                    "experiment": "demo", "run_id": run_id, "method": method, "method_params": params,
                    "method_label": label, "param_alpha": params.get("alpha", np.nan),
                    "param_beta": params.get("beta", np.nan), "param_epsilon": params.get("epsilon", np.nan),
                    "backbone": backbone, "fold": fold, "repeat": repeat, "seed": 0, "task_classes": classes,
                    "positive": classes[1], "status": "done", "error": "", "config_hash": run_id,
                    "dataset_fingerprint": fingerprint(len(records)), "folds_fingerprint": "folds-fp-1",
                    "git_commit": "abc1234", "git_dirty": False, "versions": {"torch": "2.14.1", "timm": "1.0"},
                    "device": "cpu", "wall_time_s": float(rng.uniform(5, 10)), "finished_at": "2025-01-01T00:00:00Z",
                    "n_train": 400, "n_val": 70, "n_test": 120, "selected_epoch": 3, "epochs_run": epochs,
                    "resolved_config": {},
                }
                if key in failed:
                    record.update(status="failed", error="RuntimeError: out of memory\ntraceback ...")
                else:
                    fold_level = 0.85 + 0.03 * b + 0.01 * fold
                    for split in ("test", "val"):
                        for m in METRICS:
                            noise = rng.normal(0, 0.015)
                            value = fold_level + effect + noise if m not in ("nll", "ece", "brier", "entropy") else \
                                rng.uniform(0.05, 0.6)
                            record[f"{split}_{m}"] = float(np.clip(value, 0, 1))
                    record["val_loss"] = float(rng.uniform(0.2, 0.8))
                    record["test_confusion"] = rng.multinomial(120, [1 / k**2] * k**2).reshape(k, k).tolist()
                    _write_run_files(store, run_id, record, rng, n_test, epochs, k)
                records.append(record)
                store.write_record(record)
    config = {"name": "demo", "data": {"positive": classes[1] if positive else None},
              "protocol": {"kind": "kfold", "folds": folds, "repeats": repeats}, "seeds": [0],
              "backbones": list(backbones), "methods": [{"name": m, **p} for m, p in settings],
              "run": {"output": str(root)}}
    (root / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    if audit:
        (root / "audit.md").write_text("## Audit\n\n| check | result |\n|---|---|\n| duplicates | 0 found |\n")
    return pd.DataFrame(records)


def _write_run_files(store: Store, run_id: str, record: dict, rng, n_test: int, epochs: int, k: int) -> None:
    run_dir = store.run(run_id)
    probs = rng.dirichlet(np.ones(k) * 0.6, size=n_test)
    labels = rng.integers(0, k, size=n_test)
    frame = pd.DataFrame({"file": [f"img_{i}.png" for i in range(n_test)], "label": labels, "pred": probs.argmax(1)})
    for c, name in enumerate(CLASSES[:k]):
        frame[f"prob_{name}"] = probs[:, c]
    run_dir.write_predictions(frame)
    history = pd.DataFrame({
        "run_id": run_id, "experiment": "demo", "method": record["method"], "method_label": record["method_label"],
        "backbone": record["backbone"], "fold": record["fold"], "repeat": record["repeat"], "seed": 0,
        "epoch": np.arange(1, epochs + 1), "train_loss": 1.0 / np.arange(1, epochs + 1) + rng.uniform(0, 0.1, epochs),
        "train_accuracy": rng.uniform(0.6, 0.99, epochs), "val_loss": rng.uniform(0.3, 0.9, epochs),
        "val_accuracy": rng.uniform(0.6, 0.95, epochs), "val_f1": rng.uniform(0.6, 0.95, epochs),
        "val_macro_f1": rng.uniform(0.6, 0.95, epochs), "lr": 1e-4, "epoch_time_s": 1.0,
    })
    run_dir.write_epochs(history)


def expected_selection(truth: pd.DataFrame, method: str, score: str) -> pd.DataFrame:
    """Per (backbone, fold): the row of `method` with the highest `score` (first setting on ties)."""
    done = truth[(truth["method"] == method) & (truth["status"] == "done")]
    picks = []
    for _, group in done.groupby(["backbone", "fold"]):
        values = group[score].to_numpy()
        picks.append(group.iloc[int(np.argmax(values))])
    return pd.DataFrame(picks)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values, written out independently."""
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, (m - i) * p[idx])
        adjusted[idx] = min(1.0, running)
    return adjusted


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("store") / "runs" / "demo"
    truth = make_store(root)
    out = tmp_path_factory.mktemp("reports") / "demo"
    index = build_report(root, out, oracle=True)
    return truth, out, index


def fair_values(truth: pd.DataFrame, backbone: str, metric: str) -> dict[str, pd.Series]:
    """Fair rows' values per fold: ce, alpha_js selected by val_f1, label_smoothing."""
    sub = truth[(truth["backbone"] == backbone) & (truth["status"] == "done")]
    selected = expected_selection(sub, "alpha_js", "val_f1")
    return {
        "ce": sub[sub["method"] == "ce"].set_index("fold")[metric],
        "alpha_js (selected)": selected.set_index("fold")[metric],
        "label_smoothing(epsilon=0.1)": sub[sub["method"] == "label_smoothing"].set_index("fold")[metric],
    }


def test_table_cells_are_mean_and_std_over_folds(report):
    truth, out, _ = report
    summary = pd.read_csv(out / "tables" / "summary.csv")
    wide = pd.read_csv(out / "tables" / "performance.csv", index_col=0)
    for (label, backbone), group in truth.groupby(["method_label", "backbone"]):
        for metric in ("test_accuracy", "test_f1", "test_macro_f1", "test_ece", "test_nll"):
            values = group[metric].to_numpy(dtype=np.float64)
            got = summary[(summary["row"] == label) & (summary["backbone"] == backbone) & (summary["metric"] == metric)]
            assert len(got) == 1
            assert got["mean"].iloc[0] == pytest.approx(values.mean(), abs=1e-12)
            assert got["std"].iloc[0] == pytest.approx(values.std(ddof=1), abs=1e-12)
            assert got["n"].iloc[0] == 5
        mean, std = group["test_f1"].mean() * 100, group["test_f1"].std(ddof=1) * 100
        assert wide.loc[label, f"{backbone} F1 (%)"] == f"{mean:.2f} ± {std:.2f}"


def test_best_cell_per_column_is_bold(report):
    truth, out, _ = report
    markdown = (out / "tables" / "performance.md").read_text()
    latex = (out / "tables" / "calibration.tex").read_text()
    for backbone in BACKBONES:
        sub = truth[truth["backbone"] == backbone]
        means = sub.groupby("method_label")["test_accuracy"].mean().round(4)
        selected = expected_selection(sub, "alpha_js", "val_f1")["test_accuracy"].mean().round(4)
        best = max(means.max(), selected)
        assert f"**{best * 100:.2f} ± " in markdown
        ece_best = min(sub.groupby("method_label")["test_ece"].mean().min(),
                       expected_selection(sub, "alpha_js", "val_f1")["test_ece"].mean())
        assert f"\\textbf{{{ece_best * 100:.2f} $\\pm$" in latex
    assert "alpha\\_js" in latex and "\\toprule" in latex


def test_selected_row_uses_the_validation_score(report):
    truth, out, _ = report
    summary = pd.read_csv(out / "tables" / "summary.csv")
    selection = pd.read_csv(out / "selection.csv")
    for backbone in BACKBONES:
        expected = expected_selection(truth[truth["backbone"] == backbone], "alpha_js", "val_f1")
        got = selection[(selection["kind"] == "selected") & (selection["backbone"] == backbone)].sort_values("fold")
        assert list(got["method_label"]) == list(expected.sort_values("fold")["method_label"])
        cell = summary[(summary["row"] == "alpha_js (selected)") & (summary["backbone"] == backbone)
                       & (summary["metric"] == "test_f1")]
        assert cell["mean"].iloc[0] == pytest.approx(expected["test_f1"].mean(), abs=1e-12)
        oracle = expected_selection(truth[truth["backbone"] == backbone], "alpha_js", "test_f1")
        cell = summary[(summary["row"] == "alpha_js (oracle)") & (summary["backbone"] == backbone)
                       & (summary["metric"] == "test_f1")]
        assert cell["mean"].iloc[0] == pytest.approx(oracle["test_f1"].mean(), abs=1e-12)
    assert len(set(selection[selection["kind"] == "selected"]["method_label"])) > 1, "test data should vary the choice"


def test_pairwise_statistics_match_scipy(report):
    truth, out, _ = report
    table = pd.read_csv(out / "stats" / "pairwise.csv")
    for metric in ("test_f1", "test_accuracy"):
        for backbone in BACKBONES:
            values = fair_values(truth, backbone, metric)
            rows = table[(table["metric"] == metric) & (table["backbone"] == backbone)].set_index("method")
            p_t, p_w = [], []
            for method in ("alpha_js (selected)", "label_smoothing(epsilon=0.1)"):
                diff = (values[method] - values["ce"]).to_numpy(dtype=np.float64)
                j = len(diff)
                se = np.sqrt((1 / j + 120 / 400) * diff.var(ddof=1))
                t = diff.mean() / se
                p = 2 * stats.t.sf(abs(t), j - 1)
                half = stats.t.ppf(0.975, j - 1) * se
                w = stats.wilcoxon(diff).pvalue
                got = rows.loc[method]
                assert got["n_pairs"] == 5
                assert got["mean_diff"] == pytest.approx(diff.mean(), abs=1e-12)
                assert got["t"] == pytest.approx(t, rel=1e-9)
                assert got["p_t"] == pytest.approx(p, rel=1e-9)
                assert (got["ci_low"], got["ci_high"]) == pytest.approx((diff.mean() - half, diff.mean() + half))
                assert got["p_wilcoxon"] == pytest.approx(w, rel=1e-9)
                p_t.append(p)
                p_w.append(w)
            order = ["alpha_js (selected)", "label_smoothing(epsilon=0.1)"]
            assert rows.loc[order, "p_t_holm"].to_numpy() == pytest.approx(holm(np.array(p_t)))
            assert rows.loc[order, "p_wilcoxon_holm"].to_numpy() == pytest.approx(holm(np.array(p_w)))


def test_friedman_over_all_blocks(report):
    truth, out, _ = report
    friedman = pd.read_csv(out / "stats" / "friedman.csv").set_index("metric")
    columns = {name: [] for name in ("ce", "alpha_js (selected)", "label_smoothing(epsilon=0.1)")}
    for backbone in BACKBONES:
        for name, series in fair_values(truth, backbone, "test_f1").items():
            columns[name] += list(series.sort_index())
    expected = stats.friedmanchisquare(*columns.values())
    assert friedman.loc["test_f1", "blocks"] == 10
    assert friedman.loc["test_f1", "chi2"] == pytest.approx(expected.statistic)
    assert friedman.loc["test_f1", "p"] == pytest.approx(expected.pvalue)


def test_figures_and_html_exist_and_carry_content(report):
    truth, out, index = report
    names = ["performance", "sweep_alpha_js", "cd_test_f1", "cd_test_accuracy", "cd_test_macro_f1", "reliability_resnet18",
             "reliability_efficientnet_b0", "confusion", "learning_curves"]
    for name in names:
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000, name
        assert "<svg" in (out / "figures" / f"{name}.svg").read_text()[:2000]
    page = index.read_text()
    assert index == out / "index.html"
    assert page.count("data:image/png;base64,") == len(names)
    for text in ("alpha_js (selected)", "alpha_js (oracle)", "Nadeau", "duplicates", "data-fp-1", "folds-fp-1",
                 "abc1234", "protocol:", "Friedman", "<table"):
        assert text in page, text
    assert "Partial results" not in page and "/5" not in (out / "tables" / "performance.csv").read_text()
    copied = pd.read_csv(out / "results.csv")
    assert len(copied) == len(truth) and set(copied.columns) == set(truth.columns)
    assert len(pd.read_csv(out / "epochs.csv")) == 4 * len(truth)


def test_partial_results_show_counts_and_failures(tmp_path):
    root = tmp_path / "runs" / "partial"
    failed = frozenset({("ce", "resnet18", 1), ("alpha_js(alpha=0.5, beta=1.0)", "resnet18", 2)})
    skip = frozenset({("label_smoothing(epsilon=0.1)", "resnet18", 4), ("ce", "resnet18", 3)})
    truth = make_store(root, failed=failed, skip=skip, audit=False)
    out = tmp_path / "report"
    build_report(root, out)
    wide = pd.read_csv(out / "tables" / "performance.csv", index_col=0)
    ce = truth[(truth["method"] == "ce") & (truth["backbone"] == "resnet18") & (truth["status"] == "done")]
    mean, std = ce["test_f1"].mean() * 100, ce["test_f1"].std(ddof=1) * 100
    assert wide.loc["ce", "resnet18 F1 (%)"] == f"{mean:.2f} ± {std:.2f} (3/5, 1 failed)"
    assert wide.loc["label_smoothing(epsilon=0.1)", "resnet18 F1 (%)"].endswith("(4/5)")
    assert "(" not in wide.loc["ce", "efficientnet_b0 F1 (%)"]
    pairwise = pd.read_csv(out / "stats" / "pairwise.csv")
    ls = pairwise[(pairwise["backbone"] == "resnet18") & (pairwise["method"] == "label_smoothing(epsilon=0.1)")]
    assert set(ls["n_pairs"]) == {2}
    page = (out / "index.html").read_text()
    assert "Partial results" in page and "out of memory" in page and "oracle" not in page
    assert "Data audit" not in page


def test_all_runs_failed_still_gives_a_report(tmp_path):
    root = tmp_path / "runs" / "broken"
    keys = frozenset((_label(m, p), "resnet18", f) for m, p in SETTINGS[:2] for f in range(2))
    make_store(root, folds=2, settings=SETTINGS[:2], backbones=BACKBONES[:1], failed=keys, audit=False)
    index = build_report(root, tmp_path / "report")
    wide = pd.read_csv(tmp_path / "report" / "tables" / "performance.csv", index_col=0)
    assert wide.loc["ce", "resnet18 F1 (%)"] == "failed (0/2, 2 failed)"
    assert "Partial results: 0 of 4 planned runs done (4 failed)" in index.read_text()
    assert not (tmp_path / "report" / "figures").exists()


def test_mixed_fingerprints_are_refused_and_nothing_is_written(tmp_path):
    root = tmp_path / "runs" / "mixed"
    make_store(root, folds=2, settings=SETTINGS[:2], fingerprint=lambda i: f"fp-{i % 2}")
    out = tmp_path / "report"
    with pytest.raises(UserError, match="dataset_fingerprint"):
        build_report(root, out)
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "runs"]


def test_binary_task_has_no_macro_f1_column(tmp_path):
    root = tmp_path / "runs" / "binary"
    make_store(root, folds=3, settings=SETTINGS[:2], backbones=BACKBONES[:1], classes=CLASSES[:2], n_test=10)
    build_report(root, tmp_path / "report", figures=False)
    assert not (tmp_path / "report" / "figures").exists()
    columns = pd.read_csv(tmp_path / "report" / "tables" / "performance.csv", index_col=0).columns
    assert list(columns) == ["resnet18 Accuracy (%)", "resnet18 F1 (%)"]


def test_cli_writes_report_and_exits_2_on_missing_folder(tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs" / "cli"
    make_store(root, folds=3, settings=SETTINGS[:2], backbones=BACKBONES[:1], n_test=10, audit=False)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump({"name": "cli", "run": {"output": "runs/cli"}}))
    assert cli_main(["report", str(config), "--metric", "f1", "--select-by", "val_accuracy", "--no-figures"]) == 0
    assert (tmp_path / "reports" / "demo" / "index.html").is_file()
    assert list(pd.read_csv(tmp_path / "reports" / "demo" / "stats" / "pairwise.csv")["metric"].unique()) == ["test_f1"]
    assert "report: " in capsys.readouterr().out
    assert cli_main(["report", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    assert cli_main(["report", str(root), "--metric", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(report, tmp_path):
    _, _, index = report
    png = tmp_path / "page.png"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_html.py"), str(index), str(png)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert png.stat().st_size > 50_000


@pytest.mark.skipif(not os.environ.get("SOLDERBENCH_PERF"), reason="timing run; set SOLDERBENCH_PERF=1")
def test_thousand_runs_report_in_30_seconds(tmp_path):
    settings = SETTINGS + [("alpha_js", {"alpha": a, "beta": 1.0}) for a in (0.2, 0.3, 0.7)]
    settings += [("label_smoothing", {"epsilon": e}) for e in (0.05, 0.2)]
    backbones = ["resnet18", "efficientnet_b0", "convnext_tiny", "vit_tiny"]
    root = tmp_path / "runs" / "big"
    truth = make_store(root, folds=5, repeats=5, settings=settings, backbones=backbones, n_test=120, epochs=30)
    assert len(truth) == 1000
    start, cpu = time.perf_counter(), time.process_time()
    build_report(root, tmp_path / "report", oracle=True)
    elapsed = time.perf_counter() - start
    used = time.process_time() - cpu
    print(f"report for {len(truth)} runs: {elapsed:.1f} s wall, {used:.1f} s CPU")
    assert used < 30, "CPU time, so that other load on a shared machine does not decide the result"


# --- issue #12: where a report may go -------------------------------------------------------------------------------

def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in folder.rglob("*")}


def _data_folder(out: Path, store: Path) -> None:
    (out / "normal").mkdir(parents=True)
    (out / "normal" / "img (0).png").write_bytes(b"\x89PNG image bytes")


def _experiment_output(out: Path, store: Path) -> None:
    shutil.copytree(store, out)


def _own_report_with_a_note(out: Path, store: Path) -> None:
    build_report(store, out, figures=False)
    (out / "figures").mkdir()
    (out / "figures" / "my notes.txt").write_text("mine")


def _old_version_report(out: Path, store: Path) -> None:
    """A report folder as versions before the marker wrote it (like the committed reports/quick)."""
    build_report(store, out, figures=False)
    (out / ".solderbench-report").unlink()
    (out / "figures").mkdir()
    for name in ("performance.png", "performance.svg"):
        (out / "figures" / name).write_text("figure")


def _old_report_with_a_note(out: Path, store: Path) -> None:
    _old_version_report(out, store)
    (out / "paper draft.tex").write_text("mine")


@pytest.mark.parametrize("make", [_data_folder, _experiment_output, _own_report_with_a_note, _old_report_with_a_note])
def test_report_out_refuses_a_folder_it_did_not_make(make, tmp_path, capsys):
    store = tmp_path / "runs" / "demo"
    make_store(store, folds=2, settings=SETTINGS[:2], backbones=BACKBONES[:1], n_test=6, epochs=2, audit=False)
    out = tmp_path / "target"
    make(out, store)
    before, beside = _snapshot(out), sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert cli_main(["report", str(store), "--out", str(out), "--no-figures"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "a report did not write" in lines[0], lines
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == beside  # no staging folder left either


@pytest.mark.parametrize("existing", ["none", "empty", "own", "old version"])
def test_report_replaces_only_new_empty_or_report_folders(existing, tmp_path):
    store = tmp_path / "runs" / "demo"
    make_store(store, folds=2, settings=SETTINGS[:2], backbones=BACKBONES[:1], n_test=6, epochs=2, audit=False)
    out = tmp_path / "reports" / "demo"
    if existing == "empty":
        out.mkdir(parents=True)
    elif existing == "own":
        build_report(store, out, metrics=["accuracy"], figures=False)
    elif existing == "old version":
        _old_version_report(out, store)
    build_report(store, out, metrics=["f1"], figures=False)
    assert set(pd.read_csv(out / "stats" / "pairwise.csv")["metric"]) == {"test_f1"}
    assert not (out / "figures").exists(), "the old report's files are gone"
    listed = json.loads((out / ".solderbench-report").read_text())["files"]
    assert sorted(listed) == sorted(str(p.relative_to(out)) for p in out.rglob("*")
                                    if p.is_file() and p.name != ".solderbench-report")
    assert [p.name for p in out.parent.iterdir()] == ["demo"]


# --- issue #12: a report killed while it publishes ------------------------------------------------------------------

def _report_child(store: str, out: str, crash_at: str, exchange: bool) -> None:
    """Forked child: build the report with a SIGKILL at `crash_at`, optionally without an atomic exchange."""
    import benchmark.report.publish as publish

    os.environ[CRASH_ENV] = crash_at
    if not exchange:
        publish.exchange = lambda a, b: False
    build_report(Path(store), Path(out), metrics=["f1"], figures=False)
    os._exit(0)


def _complete(out: Path) -> bool:
    listed = json.loads((out / ".solderbench-report").read_text())["files"]
    return (out / "index.html").is_file() and all((out / f).is_file() for f in listed)


def _metric_of(out: Path) -> str:
    return pd.read_csv(out / "stats" / "pairwise.csv")["metric"].iloc[0]


@pytest.mark.parametrize(("exchange", "kill", "at_path"), [
    (True, 1, "test_accuracy"), (True, 2, "test_f1"),
    (False, 1, "test_accuracy"), (False, 2, None), (False, 3, "test_f1"),
])
def test_report_killed_while_publishing_keeps_a_complete_report_and_a_rerun_recovers(exchange, kill, at_path, tmp_path):
    store = tmp_path / "runs" / "demo"
    make_store(store, folds=2, settings=SETTINGS[:2], backbones=BACKBONES[:1], n_test=6, epochs=2, audit=False)
    out = tmp_path / "reports" / "demo"
    build_report(store, out, metrics=["accuracy"], figures=False)
    child = multiprocessing.get_context("fork").Process(
        target=_report_child, args=(str(store), str(out), f"publish:{kill}", exchange))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    if at_path is None:  # no atomic exchange: killed between the two renames; the old report waits beside the path
        assert not out.exists() and _complete(out.with_name(".demo.previous"))
    else:
        assert _complete(out) and _metric_of(out) == at_path
    build_report(store, out, metrics=["balanced_accuracy"], figures=False)
    assert _complete(out) and _metric_of(out) == "test_balanced_accuracy"
    assert [p.name for p in out.parent.iterdir()] == ["demo"]


def test_interrupted_publish_is_undone_by_the_next_report_even_when_it_fails(tmp_path):
    store = tmp_path / "runs" / "demo"
    make_store(store, folds=2, settings=SETTINGS[:2], backbones=BACKBONES[:1], n_test=6, epochs=2, audit=False)
    out = tmp_path / "reports" / "demo"
    build_report(store, out, metrics=["accuracy"], figures=False)
    out.rename(out.with_name(".demo.previous"))  # what a kill between the fallback's two renames leaves
    with pytest.raises(UserError, match="bogus"):
        build_report(store, out, metrics=["bogus"])
    assert _complete(out) and _metric_of(out) == "test_accuracy"


# --- issue #12: experiments with one method, one fold, only failures ------------------------------------------------

ALPHA = _label(*SETTINGS[1])


@pytest.mark.parametrize(("settings", "folds", "failed"), [
    (SETTINGS[:1], 2, frozenset()),                                                     # one method
    (SETTINGS[:2], 1, frozenset({(ALPHA, "resnet18", 0)})),                             # mid-sweep: one method has results
    (SETTINGS[1:4], 2, frozenset((_label(*s), "resnet18", f) for s in SETTINGS[2:4] for f in range(2))),  # one setting left
])
def test_report_with_results_of_one_method_has_its_figures(settings, folds, failed, tmp_path):
    root = tmp_path / "runs" / "one"
    make_store(root, folds=folds, settings=settings, backbones=BACKBONES[:1], classes=CLASSES[:2], n_test=8, epochs=2,
               failed=failed, audit=False)
    page = build_report(root, tmp_path / "report").read_text()
    for name in ("performance", "confusion", "learning_curves", "reliability_resnet18"):
        assert (tmp_path / "report" / "figures" / f"{name}.png").stat().st_size > 5_000, name
    assert page.count("data:image/png;base64,") == 4


# --- issue #12: statistics at their edges ---------------------------------------------------------------------------

def test_corrected_ttest_without_correction_is_scipys_paired_t_test():
    from benchmark.report.stats import corrected_ttest

    diff = np.array([0.031, -0.004, 0.012, 0.027, 0.009])
    t, p, low, high = corrected_ttest(diff, 0.0)  # n_test/n_train = 0: the plain paired t-test
    expected = stats.ttest_1samp(diff, 0.0)
    interval = stats.t.interval(0.95, df=4, loc=diff.mean(), scale=stats.sem(diff))
    assert (t, p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)
    assert (low, high) == pytest.approx(interval, rel=1e-12)


def _paired_rows(offsets: dict[str, np.ndarray]):
    """Report rows of methods that classify `offsets[method]` more of 120 test images correctly than ce, per fold."""
    from benchmark.report.selection import build_rows

    base = np.array([57, 61, 66, 70, 73])
    records = [
        {"run_id": f"{m}{f}", "method": m, "method_label": m, "backbone": "resnet18", "fold": f, "repeat": 0, "seed": 0,
         "status": "done", "n_train": 400, "n_test": 120, "test_accuracy": (base[f] + offsets.get(m, np.zeros(5))[f]) / 120,
         "val_f1": 0.5}
        for m in ["ce", *offsets] for f in range(5)
    ]
    return build_rows(pd.DataFrame(records))


def test_zero_variance_differences_are_undefined_not_p_zero():
    from benchmark.report import stats as report_stats
    from benchmark.report.tables import pairwise_display

    rows = _paired_rows({"same_gain": np.full(5, 3), "identical": np.zeros(5), "noisy": np.array([1, 4, -2, 5, 2])})
    table = report_stats.pairwise(rows, ["test_accuracy"], ["resnet18"]).set_index("method")
    gain = table.loc["same_gain"]
    assert np.ptp(rows.frame.query("method == 'same_gain'")["test_accuracy"].to_numpy()
                   - rows.frame.query("method == 'ce'")["test_accuracy"].to_numpy()) > 0, "float noise, as in real runs"
    assert np.isnan([gain["t"], gain["p_t"], gain["ci_low"], gain["ci_high"], gain["p_t_holm"]]).all()
    assert gain["zero_variance"] and "zero variance" in gain["note"]
    assert gain["p_wilcoxon"] == pytest.approx(stats.wilcoxon(np.full(5, 0.025)).pvalue) == pytest.approx(2 / 2**5)
    same = table.loc["identical"]
    assert np.isnan(same["p_t"]) and same["p_wilcoxon"] == 1.0 and "identical on every pair" in same["note"]
    noisy = table.loc["noisy"]
    assert noisy["p_t_holm"] == pytest.approx(noisy["p_t"]), "undefined tests are left out of the Holm family"
    assert not noisy["zero_variance"] and noisy["note"] == ""
    shown = pairwise_display(table.reset_index()).set_index("method")
    assert shown.loc["same_gain", "p (NB t)"] == shown.loc["same_gain", "95% CI"] == "undefined (zero variance)"
    assert shown.loc["identical", "p (Wilcoxon)"] == "1"


# --- issue #12: which F1 is the headline, and the stated metric conventions -----------------------------------------

def test_more_than_two_classes_without_a_positive_class_make_macro_f1_the_headline(tmp_path):
    root = tmp_path / "runs" / "multi"
    truth = make_store(root, folds=3, backbones=BACKBONES[:1], n_test=8, epochs=2, audit=False, positive=False)
    out = tmp_path / "report"
    page = build_report(root, out, figures=False).read_text()
    columns = pd.read_csv(out / "tables" / "performance.csv", index_col=0).columns
    assert list(columns) == ["resnet18 Accuracy (%)", "resnet18 Macro F1 (%)"]
    assert set(pd.read_csv(out / "stats" / "pairwise.csv")["metric"]) == {"test_accuracy", "test_macro_f1"}
    selection = pd.read_csv(out / "selection.csv")
    assert set(selection["by"]) == {"val_macro_f1"}
    expected = expected_selection(truth, "alpha_js", "val_macro_f1").sort_values("fold")
    assert list(selection.sort_values("fold")["method_label"]) == list(expected["method_label"])
    assert set(pd.read_csv(out / "stats" / "friedman.csv")["metric"]) == {"test_accuracy", "test_macro_f1"}
    assert "macro-F1 is the headline" in page


def test_report_page_states_the_metric_conventions_and_the_positive_class(report):
    page = html.unescape(report[2].read_text())
    for text in ("Macro-F1 averages over all K classes", "a class absent from both truth and prediction counts as 0",
                 "ECE is top-label with 15 equal-width, right-closed bins", "Brier sums over classes",
                 "2× scikit-learn's binary score", "NLL clips probabilities at 1e-15",
                 "F1, precision and recall are those of the positive class 'insufficient'"):
        assert text in page, text


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_stated_conventions_hold_against_scikit_learn():
    from sklearn.metrics import brier_score_loss, f1_score, log_loss

    from benchmark.metrics import ECE_BINS, classification_metrics

    # macro-F1: class 2 never occurs in truth or prediction; it counts as 0 (scikit-learn's default skips it)
    labels = np.array([0, 0, 1, 1, 1, 0])
    probs = np.array([[.9, .05, .05], [.2, .7, .1], [.1, .8, .1], [.3, .6, .1], [.6, .3, .1], [.8, .1, .1]])
    pred = probs.argmax(1)
    per_class = f1_score(labels, pred, labels=[0, 1], average=None)
    got = classification_metrics(probs, labels, positive=1)
    assert got["macro_f1"] == pytest.approx(per_class.sum() / 3)
    assert got["macro_f1"] != pytest.approx(f1_score(labels, pred, average="macro"))
    # Brier: summed over the classes, twice scikit-learn's binary score
    binary = np.array([[.7, .3], [.4, .6], [.2, .8], [.9, .1]])
    y = np.array([0, 1, 0, 0])
    got = classification_metrics(binary, y, positive=1)
    assert got["brier"] == pytest.approx(2 * brier_score_loss(y, binary[:, 1]))
    # NLL: a probability of 0 for the true class costs -log(1e-15), not scikit-learn's float64 epsilon
    certain = np.array([[1.0, 0.0], [0.0, 1.0]])
    got = classification_metrics(certain, np.array([1, 1]), positive=1)
    assert got["nll"] == pytest.approx(-np.log(1e-15) / 2, rel=1e-9)
    assert got["nll"] != pytest.approx(log_loss([1, 1], certain, labels=[0, 1]), rel=1e-3)
    # ECE: top-label, right-closed bins: a confidence exactly on an edge belongs to the bin below it
    edge = 8 / ECE_BINS
    probs = np.array([[edge, 1 - edge], [0.55, 0.45]])
    got = classification_metrics(probs, np.array([0, 1]), positive=1)
    right_closed = 0.5 * abs(1 - edge) + 0.5 * abs(0 - 0.55)
    assert np.linspace(0, 1, ECE_BINS + 1)[8] == edge
    assert got["ece"] == pytest.approx(right_closed)
    three = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    got = classification_metrics(three, np.array([1, 2]), positive=1)
    assert got["ece"] == pytest.approx(0.5 * abs(1 - 0.5) + 0.5 * abs(0 - 0.6))  # top label only


def test_report_out_under_a_file_is_one_line_exit_2(tmp_path, capsys):
    store = tmp_path / "runs" / "demo"
    make_store(store, folds=2, settings=SETTINGS[:2], backbones=BACKBONES[:1], n_test=6, epochs=2, audit=False)
    (tmp_path / "afile").write_text("a regular file")
    assert cli_main(["report", str(store), "--out", str(tmp_path / "afile" / "report"), "--no-figures"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "afile" in lines[0] and "cannot create" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "runs"]
