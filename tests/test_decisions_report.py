"""The decision side of `report` end to end: verdicts, variance components, costs, the per-image bootstrap and the
figures, on records with two seeds per split whose metrics are computed from their recorded predictions."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, f1_score

from benchmark.cli import main as cli_main
from benchmark.report import build_report, perimage, verdicts
from benchmark.store import Store

CLASSES = ["good", "bridge", "void"]
SKILL = {"ce": 0.70, "label_smoothing": 0.74, "max_entropy": 0.70}
BACKBONES = ["resnet18", "vit_tiny"]


def make_seeded_store(root: Path, folds: int = 4, seeds: tuple[int, ...] = (0, 1), n_test: int = 45) -> pd.DataFrame:
    """Records whose test accuracy and macro-F1 are those of their predictions.csv; the same test images (and
    labels) per fold for every run."""
    store, records = Store(root), []
    k = len(CLASSES)
    for backbone in BACKBONES:
        for fold in range(folds):
            labels = np.random.default_rng(fold).integers(0, k, n_test)
            for seed in seeds:
                for method, skill in SKILL.items():
                    key = (method, backbone, fold, seed)
                    rng = np.random.default_rng(abs(hash(key)) % 2**32)
                    right = rng.random(n_test) < skill
                    pred = np.where(right, labels, (labels + rng.integers(1, k, n_test)) % k)
                    run_id = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
                    probs = np.full((n_test, k), 0.1)
                    probs[np.arange(n_test), pred] = 0.8
                    frame = pd.DataFrame({"file": [f"f{fold}/img_{i}.png" for i in range(n_test)], "label": labels,
                                          "pred": pred})
                    for c, name in enumerate(CLASSES):
                        frame[f"prob_{name}"] = probs[:, c]
                    store.run(run_id).write_predictions(frame)
                    record = {
                        "experiment": "seeded", "run_id": run_id, "method": method, "method_params": {},
                        "method_label": method, "backbone": backbone, "fold": fold, "repeat": 0, "seed": seed,
                        "task_classes": CLASSES, "positive": CLASSES[1], "status": "done", "error": "",
                        "resolved_config": {}, "git_commit": "abc1234", "git_dirty": False,
                        "versions": {"torch": "2.14.1"}, "device": "cpu", "finished_at": "2025-01-01T00:00:00Z",
                        "test_accuracy": accuracy_score(labels, pred),
                        "test_macro_f1": f1_score(labels, pred, labels=range(k), average="macro", zero_division=0),
                        "val_accuracy": 0.7, "val_macro_f1": 0.7, "n_train": 300, "n_val": 50, "n_test": n_test,
                        "wall_time_s": 60.0, "dataset_fingerprint": "d", "folds_fingerprint": "f",
                    }
                    store.write_record(record)
                    records.append(record)
    config = {"name": "seeded", "data": {"positive": None}, "protocol": {"kind": "kfold", "folds": folds, "repeats": 1},
              "seeds": list(seeds), "backbones": BACKBONES, "methods": [{"name": m} for m in SKILL],
              "run": {"output": str(root)}}
    (root / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    return pd.DataFrame(records)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeded") / "runs" / "seeded"
    truth = make_seeded_store(root)
    out = tmp_path_factory.mktemp("reports") / "seeded"
    build_report(root, out, rope_pp=1.0)
    return truth, root, out


def _blocks(truth: pd.DataFrame, metric: str, backbone: str, method: str) -> np.ndarray:
    """Per fold: the mean over seeds of (method - ce), written out from the records."""
    sub = truth[truth["backbone"] == backbone].pivot_table(index=["fold", "seed"], columns="method", values=metric)
    return (sub[method] - sub["ce"]).groupby(level="fold").mean().to_numpy()


def test_verdicts_use_seed_blocks_and_pool_the_backbones(seeded):
    truth, _, out = seeded
    table = pd.read_csv(out / "stats" / "verdicts.csv")
    assert set(table["verdict"]) <= set(verdicts.WORDS)
    for metric in ("test_accuracy", "test_macro_f1"):
        for backbone in BACKBONES:
            row = table[(table["metric"] == metric) & (table["backbone"] == backbone)
                        & (table["method"] == "label_smoothing")].iloc[0]
            diff = _blocks(truth, metric, backbone, "label_smoothing")
            expected = verdicts.verdict(diff, 45 / 300, 0.01, True)
            assert (row["blocks"], row["seeds_per_block"]) == (4, 2)
            assert row["p_better"] == pytest.approx(expected.p_better, abs=1e-12)
            assert row["verdict"] == expected.word
        pooled = table[(table["metric"] == metric) & (table["backbone"] == verdicts.POOLED)
                       & (table["method"] == "label_smoothing")].iloc[0]
        mean = np.mean([_blocks(truth, metric, b, "label_smoothing") for b in BACKBONES], axis=0)
        assert pooled["mean_diff"] == pytest.approx(mean.mean(), abs=1e-12)


def test_variance_components_measure_the_seed_part(seeded):
    _, _, out = seeded
    table = pd.read_csv(out / "stats" / "variance.csv")
    assert set(table["of"]) == {"score", "difference to ce"}
    assert (table["seeds_per_split"] == 2).all() and table["sd_seed"].notna().all()


def test_per_image_bootstrap_point_equals_the_fold_level_difference(seeded):
    truth, _, out = seeded
    table = pd.read_csv(out / "stats" / "perimage.csv")
    for metric in perimage.METRICS:
        for backbone in BACKBONES:
            row = table[(table["metric"] == metric) & (table["backbone"] == backbone)
                        & (table["method"] == "label_smoothing")].iloc[0]
            assert row["mean_diff"] == pytest.approx(_blocks(truth, metric, backbone, "label_smoothing").mean(), abs=1e-12)
            assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"]
            assert (row["blocks"], row["runs_per_method"], row["images"]) == (4, 8, 180)


def test_page_figures_and_costs(seeded):
    _, _, out = seeded
    page = (out / "index.html").read_text()
    assert "Verdicts and what a decision costs" in page and "±1 pp" in page
    assert "not “no difference”" in page and "no difference between" not in page.lower()
    assert "conditions on the training sets" in page
    for name in ("verdicts", "forest_resnet18", "forest_vit_tiny", "forest_pooled"):
        for suffix in ("png", "svg", "pdf"):
            assert (out / "figures" / f"{name}.{suffix}").stat().st_size > 1000
    lines = [line for line in (out / "stats" / "decision.md").read_text().splitlines() if line]
    assert len(lines) == 2 and all("4 folds × 2 seeds" in line for line in lines)
    assert (pd.read_csv(out / "stats" / "power.csv")["decide"] == 0.02).all()


def test_bootstrap_matches_a_plain_resampling_loop():
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0, 1, 2])
    method = np.array([[0, 1, 1, 1, 0, 2, 2, 0, 1, 1], [0, 0, 1, 2, 1, 2, 0, 0, 1, 2]])
    base = np.array([[1, 0, 1, 0, 1, 2, 1, 0, 0, 2], [0, 0, 0, 1, 1, 2, 2, 1, 1, 2]])
    block = perimage.Block(labels, method, base)
    draws = perimage.bootstrap([block], 3, replicates=50, seed=5)
    rng = np.random.default_rng(5)
    weights = perimage._weights(labels, 50, rng)
    for b in range(50):
        index = np.repeat(np.arange(len(labels)), weights[b].astype(int))
        y = labels[index]
        acc = np.mean([accuracy_score(y, m[index]) - accuracy_score(y, o[index]) for m, o in zip(method, base)])
        f1 = np.mean([f1_score(y, m[index], labels=[0, 1, 2], average="macro", zero_division=0)
                      - f1_score(y, o[index], labels=[0, 1, 2], average="macro", zero_division=0)
                      for m, o in zip(method, base)])
        assert draws["test_accuracy"][b + 1] == pytest.approx(acc, abs=1e-12)
        assert draws["test_macro_f1"][b + 1] == pytest.approx(f1, abs=1e-12)
        assert np.bincount(y, minlength=3).tolist() == np.bincount(labels, minlength=3).tolist()  # stratified


def test_records_without_predictions_skip_the_per_image_part(tmp_path, capsys):
    root = tmp_path / "runs" / "seeded"
    make_seeded_store(root, folds=3, seeds=(0,), n_test=12)
    for path in root.glob("runs/*/predictions.csv"):
        path.unlink()
    assert cli_main(["report", str(root), "--out", str(tmp_path / "r"), "--no-figures", "--decide", "3"]) == 0
    printed = capsys.readouterr().out
    assert "±3 pp" in printed and "one seed per split" in printed
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Per-image analysis skipped" in page and pd.read_csv(tmp_path / "r" / "stats" / "verdicts.csv").shape[0] > 0


@pytest.mark.parametrize("args", [["--rope", "-1"], ["--decide", "0"], ["--rope", "nan"]])
def test_bad_rope_or_decide_exit_2_and_write_nothing(args, tmp_path, capsys):
    root = tmp_path / "runs" / "seeded"
    make_seeded_store(root, folds=2, seeds=(0,), n_test=6)
    assert cli_main(["report", str(root), "--out", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err
    assert args[0] in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    shutil.rmtree(root)


def test_dry_run_lines_price_the_planned_design(seeded):
    from benchmark.report.decisions import decisions_for_output
    from benchmark.report.power import Design

    _, root, _ = seeded
    lines = decisions_for_output(root, Design(4, 1, 3), runs_per_unit=6, run_s=600.0)
    assert len(lines) == 2 and all("the planned design (4 folds × 3 seeds)" in line for line in lines)
    assert all("To detect ±2 pp:" in line or "cannot be detected" in line for line in lines)
