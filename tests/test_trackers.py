"""Trackers against the real libraries: MLflow's client and TensorBoard's event reader read back what was logged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.crash import CRASH_ENV
from tests.helpers import make_image_folder, write_config

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")
REPO = Path(__file__).resolve().parent.parent


def _experiment(root: Path) -> Path:
    """ce and alpha_js (α grid of 2) × 3 folds, 2 epochs: 9 runs, logged to MLflow and TensorBoard."""
    folder = make_image_folder(root / "data", {"normal": 24, "defective": 12})
    return write_config(root / "exp.yaml", folder, run={"output": str(root / "out"), "device": "cpu",
                                                         "trackers": ["mlflow", "tensorboard"]})


@pytest.fixture
def tracked(tmp_path):
    return _experiment(tmp_path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The experiment, run once for the read-back tests."""
    path = _experiment(tmp_path_factory.mktemp("tracked"))
    assert main(["run", str(path), "--quiet"]) == 0
    return path


def _mlflow_runs(output: Path) -> list:
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("t")
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def test_mlflow_holds_one_nested_run_per_benchmark_run_with_params_and_metrics(finished):
    output = finished.parent / "out"
    results = pd.read_csv(output / "results.csv")
    client, runs = _mlflow_runs(output)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.tags["solderbench.run_id"] for r in children) == sorted(results["run_id"])
    by_id = {r.data.tags["solderbench.run_id"]: r for r in children}
    for _, row in results.iterrows():
        run = by_id[row["run_id"]]
        assert run.info.status == "FINISHED"
        assert run.data.tags["solderbench.method"] == row["method"] and run.data.tags["solderbench.fold"] == str(row["fold"])
        assert run.data.params["train.optimizer.lr"] == "0.01" and run.data.params["method"] == row["method"]
        assert run.data.metrics["test_accuracy"] == pytest.approx(row["test_accuracy"])
        history = client.get_metric_history(run.info.run_id, "epoch/val_f1")
        assert [m.step for m in history] == [1, 2]
    assert parents[0].data.params["train.epochs"] == "2"
    location = client.get_experiment_by_name("t").artifact_location
    assert location.startswith(output.resolve().as_uri())  # nothing lands in ./mlruns of the working directory


def test_tensorboard_has_each_runs_scalars(finished):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output = finished.parent / "out"
    results = pd.read_csv(output / "results.csv").set_index("run_id")
    epochs = pd.read_csv(output / "epochs.csv")
    assert sorted(p.name for p in (output / "tensorboard").iterdir()) == sorted(results.index)
    for run_id in results.index:
        events = EventAccumulator(str(output / "tensorboard" / run_id))
        events.Reload()
        curve = [(e.step, e.value) for e in events.Scalars("epoch/train_loss")]
        expected = epochs[epochs["run_id"] == run_id][["epoch", "train_loss"]]
        assert [s for s, _ in curve] == expected["epoch"].tolist()
        assert [v for _, v in curve] == pytest.approx(expected["train_loss"].tolist(), rel=1e-6)
        assert events.Scalars("final/test_f1")[0].value == pytest.approx(results.loc[run_id, "test_f1"], rel=1e-6)


def test_resume_after_kill_logs_every_run_exactly_once(tracked, tmp_path):
    env = os.environ | {CRASH_ENV: "recorded:4", "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-m", "benchmark", "run", str(tracked), "--quiet"], cwd=tmp_path,
                            env=env, capture_output=True, text=True)
    assert killed.returncode == -9
    assert main(["run", str(tracked), "--quiet"]) == 0
    assert main(["run", str(tracked), "--quiet"]) == 0  # nothing to train: must not log anything again
    output = tracked.parent / "out"
    _, runs = _mlflow_runs(output)
    children = [r.data.tags["solderbench.run_id"] for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(children) == sorted(pd.read_csv(output / "results.csv")["run_id"])
    assert len([r for r in runs if "mlflow.parentRunId" not in r.data.tags]) == 1


def test_a_failing_tracker_warns_and_loses_no_run(tracked, monkeypatch, capsys):
    from benchmark.trackers import mlflow as tracker

    def broken(self, record, history):
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(tracker.MlflowTracker, "log_run", broken)
    assert main(["run", str(tracked), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "9 trained, 0 failed" in captured.out
    assert "warning: mlflow tracker: ConnectionError: tracking server went away" in captured.err
    assert len(pd.read_csv(tracked.parent / "out" / "results.csv")) == 9
    assert len(list((tracked.parent / "out" / "tensorboard").iterdir())) == 9  # the other tracker still logged


def test_a_tracker_not_installed_is_one_line_before_anything(tracked, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert main(["run", str(tracked), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run.trackers: 'mlflow' needs mlflow installed" in err
    assert not (tracked.parent / "out").exists()


def test_a_half_written_mlflow_run_is_replaced_and_a_moved_folder_keeps_its_parent(tracked, monkeypatch, capsys):
    """One metrics write fails: the run is written again at the sweep's end, not kept twice; then the output folder is
    moved and resumed: the same parent run continues, nothing is logged again."""
    import shutil

    from mlflow.tracking import MlflowClient

    real, calls = MlflowClient.log_batch, {"n": 0}

    def flaky(self, run_id, metrics=(), params=(), tags=()):
        calls["n"] += 1
        if metrics and calls["n"] == 3:
            raise ConnectionError("lost the connection once")
        return real(self, run_id, metrics=metrics, params=params, tags=tags)

    monkeypatch.setattr(MlflowClient, "log_batch", flaky)
    assert main(["run", str(tracked), "--quiet"]) == 0
    assert capsys.readouterr().err.count("lost the connection once") == 1
    output = tracked.parent / "out"
    _, runs = _mlflow_runs(output)
    assert len(runs) == 1 + len(pd.read_csv(output / "results.csv"))  # the half-written one is gone at once
    moved = tracked.parent / "moved"
    shutil.move(output, moved)
    tracked.write_text(tracked.read_text().replace(str(output), str(moved)))
    assert main(["run", str(tracked), "--quiet"]) == 0
    _, runs = _mlflow_runs(moved)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["solderbench.run_id"] for r in children) == sorted(
        pd.read_csv(moved / "results.csv")["run_id"])
    assert {r.info.status for r in children} == {"FINISHED"}
    assert len(runs) - len(children) == 1
