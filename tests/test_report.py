"""`python -m benchmark report`: tables, hyper-parameter selection, statistics, figures, HTML, CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
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
               n_test: int = 24, epochs: int = 4, audit: bool = True) -> pd.DataFrame:
    """Write a results store with known numbers; return the records as a DataFrame (the test's ground truth)."""
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
                    record["test_confusion"] = rng.integers(0, 30, size=(k, k)).tolist()
                    _write_run_files(store, run_id, record, rng, n_test, epochs, k)
                records.append(record)
                store.write_record(record)
    config = {"name": "demo", "protocol": {"kind": "kfold", "folds": folds, "repeats": repeats}, "seeds": [0],
              "backbones": list(backbones), "methods": [{"name": m, **p} for m, p in settings],
              "run": {"output": str(root)}}
    (root / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    if audit:
        (root / "audit.md").write_text("## Audit\n\n| check | result |\n|---|---|\n| duplicates | 0 found |\n")
    return pd.DataFrame(records)


def _write_run_files(store: Store, run_id: str, record: dict, rng, n_test: int, epochs: int, k: int) -> None:
    run_dir = store.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    probs = rng.dirichlet(np.ones(k) * 0.6, size=n_test)
    labels = rng.integers(0, k, size=n_test)
    frame = pd.DataFrame({"file": [f"img_{i}.png" for i in range(n_test)], "label": labels, "pred": probs.argmax(1)})
    for c, name in enumerate(CLASSES[:k]):
        frame[f"prob_{name}"] = probs[:, c]
    frame.to_csv(run_dir / "predictions.csv", index=False)
    history = pd.DataFrame({
        "run_id": run_id, "experiment": "demo", "method": record["method"], "method_label": record["method_label"],
        "backbone": record["backbone"], "fold": record["fold"], "repeat": record["repeat"], "seed": 0,
        "epoch": np.arange(1, epochs + 1), "train_loss": 1.0 / np.arange(1, epochs + 1) + rng.uniform(0, 0.1, epochs),
        "train_accuracy": rng.uniform(0.6, 0.99, epochs), "val_loss": rng.uniform(0.3, 0.9, epochs),
        "val_accuracy": rng.uniform(0.6, 0.95, epochs), "val_f1": rng.uniform(0.6, 0.95, epochs),
        "val_macro_f1": rng.uniform(0.6, 0.95, epochs), "lr": 1e-4, "epoch_time_s": 1.0,
    })
    history.to_csv(run_dir / "epochs.csv", index=False)


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
