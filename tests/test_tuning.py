"""Equal-budget tuning end to end: trials as runs, the same budget per method, kill and resume, the tuned rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.crash import CRASH_ENV
from benchmark.store import load_results
from benchmark.tune.sampling import Finished, draw, grid_points
from methods.space import Choice, IntUniform, LogUniform, Uniform
from tests.helpers import make_image_folder, write_config

TUNE = {"trials": 3, "sampler": "tpe", "seed": 0, "space": {"train.optimizer.lr": {"log_uniform": [1.0e-3, 3.0e-2]}}}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tuned(tmp_path):
    """2 methods × 3 trials × 2 folds (tiny_cnn, 2 epochs): 12 trial runs and 4 fixed runs."""
    folder = make_image_folder(tmp_path / "data", {"normal": 24, "defective": 12})
    return write_config(tmp_path / "exp.yaml", folder, methods=["ce", "label_smoothing"],
                        protocol={"folds": 2, "val_fraction": 0.25, "seed": 1}, tune=TUNE)


def _trials(output: Path) -> pd.DataFrame:
    table = pd.read_csv(output / "results.csv")
    return table[table["tune_trial"].notna()].sort_values(["method", "fold", "tune_trial"]).reset_index(drop=True)


def test_every_method_gets_the_same_budget_as_ordinary_runs(tuned, capsys):
    assert main(["run", str(tuned), "--quiet"]) == 0
    assert "16 trained, 0 failed" in capsys.readouterr().out
    trials = _trials(tuned.parent / "out")
    budget = trials.groupby(["method", "fold"])["tune_trial"].apply(sorted).to_dict()
    assert budget == {(m, f): [0.0, 1.0, 2.0] for m in ("ce", "label_smoothing") for f in (0, 1)}
    assert trials["run_id"].is_unique and set(trials["status"]) == {"done"}
    for run_id in trials["run_id"]:
        record = json.loads((tuned.parent / "out" / "runs" / run_id / "record.json").read_text())
        assert record["tune_trial"] in (0, 1, 2) and record["tune_metric"] == "val_f1"
    values = trials["tune_params"].map(json.loads)
    # each method searches its own space plus the experiment's shared lr, drawn inside the bounds
    assert {frozenset(v) for v in values[trials["method"] == "ce"]} == {frozenset({"train.optimizer.lr"})}
    assert {frozenset(v) for v in values[trials["method"] == "label_smoothing"]} == {
        frozenset({"label_smoothing.epsilon", "train.optimizer.lr"})}
    lrs = values.map(lambda v: v["train.optimizer.lr"])
    assert lrs.between(1e-3, 3e-2).all() and lrs.nunique() > 1
    # the drawn lr reached the optimizer: it is in the run's resolved config, which its id hashes
    record = json.loads((tuned.parent / "out" / "runs" / trials["run_id"][0] / "record.json").read_text())
    assert record["resolved_config"]["train"]["optimizer"]["lr"] == pytest.approx(lrs[0])
    # trial 0 (random start) draws the shared key with the same seed for every method of a fold: paired
    first = trials[trials["tune_trial"] == 0].set_index(["method", "fold"])["tune_params"].map(json.loads)
    for fold in (0, 1):
        assert first[("ce", fold)]["train.optimizer.lr"] == first[("label_smoothing", fold)]["train.optimizer.lr"]


def test_report_has_tuned_rows_chosen_on_validation_and_compared_with_tuned_ce(tuned):
    assert main(["run", str(tuned), "--quiet"]) == 0
    out = tuned.parent / "report"
    assert main(["report", str(tuned.parent / "out"), "--out", str(out), "--no-figures"]) == 0
    selection = pd.read_csv(out / "selection.csv")
    picked = selection[selection["kind"] == "tuned"]
    assert sorted(picked["method"].unique()) == ["ce", "label_smoothing"] and len(picked) == 4
    trials = _trials(tuned.parent / "out")
    for (method, fold), rows in trials.groupby(["method", "fold"]):
        best = rows.sort_values(["val_f1", "tune_trial"], ascending=[False, True], kind="stable").iloc[0]
        chosen = picked[(picked["method"] == method) & (picked["fold"] == fold)].iloc[0]
        assert chosen["method_label"] == best["method_label"] and chosen["score"] == best["val_f1"]
    pairwise = pd.read_csv(out / "stats" / "pairwise.csv")
    assert set(pairwise["baseline"]) == {"ce (tuned)"} and set(pairwise["method"]) == {"label_smoothing (tuned)"}
    budget = pd.read_csv(out / "tables" / "tuning.csv")
    assert set(budget["trials"]) == {3} and set(budget["done"]) == {3}
    page = (out / "index.html").read_text()
    assert "3 trials per method and fold, sampler tpe" in page


def test_killed_tuned_sweep_resumes_to_the_same_trials(tuned, tmp_path):
    """Kill -9 after the 7th recorded run (mid-tuning), resume: same trial values and run ids as an uninterrupted run."""
    env = os.environ | {CRASH_ENV: "recorded:7", "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-m", "benchmark", "run", str(tuned), "--quiet"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert killed.returncode == -9
    partial = load_results(tuned.parent / "out")  # the records (results.csv is rebuilt once per wave)
    assert 0 < partial["tune_trial"].notna().sum() < 12
    assert main(["run", str(tuned), "--quiet"]) == 0
    resumed = _trials(tuned.parent / "out")
    clean = tmp_path / "clean.yaml"
    clean.write_text(tuned.read_text().replace(str(tuned.parent / "out"), str(tmp_path / "clean-out")))
    assert main(["run", str(clean), "--quiet"]) == 0
    fresh = _trials(tmp_path / "clean-out")
    columns = ["method", "fold", "tune_trial", "run_id", "tune_params", "val_f1", "test_f1"]
    pd.testing.assert_frame_equal(resumed[columns], fresh[columns])


def test_dry_run_counts_trials_and_writes_nothing(tuned, capsys):
    assert main(["run", str(tuned), "--dry-run", "--no-estimate"]) == 0
    captured = capsys.readouterr()
    assert "4 runs + 12 tuning trial runs (3 trials per method and fold, 8 drawn once the trials before them finish)" \
        in captured.err
    assert captured.out.count("trial=") == 12 and captured.out.count("[  later]") == 8
    assert not (tuned.parent / "out").exists()


def test_a_method_without_a_space_gets_one_trial(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "data", {"normal": 24, "defective": 12})
    path = write_config(tmp_path / "exp.yaml", folder, methods=["ce"], protocol={"folds": 2, "val_fraction": 0.25},
                        tune={"trials": 4})
    assert main(["run", str(path), "--dry-run", "--no-estimate"]) == 0
    assert "2 runs + 2 tuning trial runs" in capsys.readouterr().err


@pytest.mark.parametrize("space, expected", [
    ({"train.optimizer.lrr": {"log_uniform": [1e-4, 1e-2]}}, "did you mean 'lr'?"),
    ({"train.optimizer.lr": {"log_uniform": [0, 1e-2]}}, "log_uniform: [0.0, 0.01]: needs low > 0"),
    ({"train.epochs": {"uniform": [2, 5]}}, "train.epochs: expected an integer"),
    ({"label_smoothing.epsilon": {"uniform": [0.1, 1.5]}}, "epsilon must be in [0, 1)"),
    ({"label_smoothing.eps": {"uniform": [0.1, 0.2]}}, "has no parameter 'eps' (did you mean 'epsilon'?)"),
    ({"focal.gamma": {"uniform": [1, 2]}}, "neither 'train' nor a method of this experiment"),
    ({"lr": {"uniform": [1, 2]}}, "must be a dotted name"),
])
def test_bad_search_space_is_one_line_and_writes_nothing(tuned, capsys, space, expected):
    text = tuned.read_text()
    import yaml

    cfg = yaml.safe_load(text)
    cfg["tune"]["space"] = space
    tuned.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tuned), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and str(tuned) in err
    assert not (tuned.parent / "out").exists()


def test_sampler_draws_inside_the_space_and_repeat_themselves():
    dims = {"a": Uniform(0.1, 0.9), "b": LogUniform(1e-4, 1e-1), "c": IntUniform(1, 4), "d": Choice(("x", "y"))}
    history: list[Finished] = []
    for k in range(6):
        for kind in ("tpe", "random"):
            one = draw(dims, history, kind, 1, 100 + k, 6, True)
            assert one == draw(dims, history, kind, 1, 100 + k, 6, True)
            assert 0.1 <= one["a"] <= 0.9 and 1e-4 <= one["b"] <= 1e-1 and one["c"] in range(1, 5) and one["d"] in "xy"
        history.append(Finished(one, float(one["a"])))


def test_grid_covers_every_point_before_repeating():
    dims = {"a": Uniform(0.0, 1.0), "d": Choice(("x", "y"))}
    points = grid_points(dims, 6)
    assert len(points) == 6 and {p["d"] for p in points} == {"x", "y"}  # 3 evenly spaced a-values × 2 choices
    assert sorted({p["a"] for p in points}) == [0.0, 0.5, 1.0]
    drawn = [draw(dims, [Finished({}, None)] * k, "grid", 3, 0, 6, True) for k in range(len(points))]
    assert sorted(map(str, drawn)) == sorted(map(str, points))


def _set_tune(path: Path, **changes) -> None:
    import yaml

    cfg = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(cfg))


def test_val_loss_is_not_a_tuning_score_trials_are_ranked_by_val_nll(tuned):
    """Each objective's loss adds its own regularizer, which depends on the searched parameter: ranking trials by it
    would pick, e.g., confidence_penalty's largest beta. Trials are ranked by the validation NLL instead."""
    _set_tune(tuned, protocol__select_by="val_loss", methods=["ce", "confidence_penalty"])
    assert main(["run", str(tuned), "--quiet"]) == 0
    trials = _trials(tuned.parent / "out")
    assert set(trials["tune_metric"]) == {"val_nll"}
    out = tuned.parent / "report"
    assert main(["report", str(tuned.parent / "out"), "--out", str(out), "--no-figures"]) == 0
    picked = pd.read_csv(out / "selection.csv").query("kind == 'tuned'")
    for (method, fold), rows in trials.groupby(["method", "fold"]):
        chosen = picked[(picked["method"] == method) & (picked["fold"] == fold)].iloc[0]
        assert chosen["score"] == rows["val_nll"].min() and chosen["by"] == "val_nll"


@pytest.mark.parametrize("change, expected", [
    ({"tune__space": {"train.scheduler.step_size": {"int": [1, 3]}}}, "train.scheduler is null (off)"),
    ({"tune__trials": 100000}, "tune.trials: must be in 1..1000, got 100000"),
])
def test_more_bad_tuning_input_is_one_line(tuned, capsys, change, expected):
    _set_tune(tuned, **change)
    assert main(["run", str(tuned), "--dry-run", "--no-estimate"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_grid_budget_stops_at_the_grid_and_choices_may_be_null(tuned, capsys):
    _set_tune(tuned, tune__sampler="grid", tune__trials=4, methods=["ce"],
              tune__space={"train.optimizer.name": {"choice": ["adam", "sgd"]}, "train.threads": {"choice": [None, 1]}})
    assert main(["run", str(tuned), "--dry-run", "--no-estimate"]) == 0
    assert "2 runs + 8 tuning trial runs" in capsys.readouterr().err  # grid of 2 × 2 points: 4 trials per fold
    _set_tune(tuned, tune__space={"train.optimizer.name": {"choice": ["adam", "sgd"]}})
    assert main(["run", str(tuned), "--dry-run", "--no-estimate"]) == 0
    assert "2 runs + 4 tuning trial runs" in capsys.readouterr().err  # 2 grid points per fold, not 4 repeats


def test_only_and_set_reach_tuning_trials(tuned, capsys):
    assert main(["run", str(tuned), "--dry-run", "--no-estimate"]) == 0
    trial_id = next(line.split()[1] for line in capsys.readouterr().out.splitlines() if "trial=0" in line)
    assert main(["run", str(tuned), "--dry-run", "--no-estimate", "--only", f"run_id={trial_id}"]) == 0
    assert trial_id in capsys.readouterr().out
    assert main(["run", str(tuned), "--dry-run", "--no-estimate",
                 "--set", "tune.space.train.optimizer.lr={uniform: [0.001, 0.002]}"]) == 0
    assert "4 runs + 12 tuning trial runs" in capsys.readouterr().err
