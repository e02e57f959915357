"""End to end: the run command on tiny images with a tiny backbone, resume, dry-run, status."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.runner import run_sweep
from benchmark.store import load_results
from tests.helpers import write_config

IDENTITY = ["method_label", "backbone", "fold", "repeat", "seed", "run_id"]
METRICS = ["test_accuracy", "test_f1", "test_auroc", "test_nll", "test_ece", "val_f1", "selected_epoch"]


@pytest.fixture
def experiment(tmp_path, image_folder):
    return write_config(tmp_path / "exp.yaml", image_folder)


def test_end_to_end_table_then_nothing_to_do(experiment, capsys):
    assert main(["run", str(experiment), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "9 trained, 0 failed" in out and "wall time" in out and "peak memory" in out
    table = pd.read_csv(experiment.parent / "out" / "results.csv")
    assert len(table) == 9 and set(table["status"]) == {"done"}
    assert table.groupby("method_label").size().to_dict() == {
        "alpha_js(alpha=0.3, beta=1.0, variant=correct)": 3,
        "alpha_js(alpha=0.7, beta=1.0, variant=correct)": 3,
        "ce": 3,
    }
    assert table["run_id"].is_unique and table["fold"].tolist().count(0) == 3
    for col in METRICS + ["dataset_fingerprint", "folds_fingerprint", "git_commit", "versions", "param_alpha"]:
        assert col in table, col
    assert table["test_accuracy"].between(0, 1).all()
    for run_id in table["run_id"]:
        run_dir = experiment.parent / "out" / "runs" / run_id
        assert (run_dir / "best.pt").exists() and not (run_dir / "last.pt").exists()
        preds = pd.read_csv(run_dir / "predictions.csv")
        assert {"file", "label", "pred", "prob_normal", "prob_defective"} <= set(preds)
    epochs = pd.read_csv(experiment.parent / "out" / "epochs.csv")
    assert len(epochs) == 9 * 2
    assert main(["run", str(experiment), "--quiet"]) == 0
    assert "0 trained, 0 failed, 9 already finished" in capsys.readouterr().out


def test_same_config_same_numbers(tmp_path, image_folder):
    a = write_config(tmp_path / "a" / "exp.yaml", image_folder)
    b = write_config(tmp_path / "b" / "exp.yaml", image_folder)
    run_sweep(load_config(a, ["methods=[ce]"]), show_progress=False)
    run_sweep(load_config(b, ["methods=[ce]"]), show_progress=False)
    ta, tb = load_results(a.parent / "out"), load_results(b.parent / "out")
    pd.testing.assert_series_equal(ta["test_nll"], tb["test_nll"])
    assert list(ta["run_id"]) == list(tb["run_id"])


def test_interrupted_run_resumes_to_the_same_result(tmp_path, image_folder, monkeypatch):
    import benchmark.rundir as rundir

    full = write_config(tmp_path / "full" / "exp.yaml", image_folder, methods=["ce"])
    part = write_config(tmp_path / "part" / "exp.yaml", image_folder, methods=["ce"])
    overrides = ["train.epochs=3", "protocol.folds=2"]
    run_sweep(load_config(full, overrides), show_progress=False)

    real_save, calls = rundir.save_checkpoint, {"n": 0}

    def crash_after_second_epoch(path, payload):
        real_save(path, payload)
        if path.name == "last.pt":
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(rundir, "save_checkpoint", crash_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_config(part, overrides), show_progress=False)
    monkeypatch.setattr(rundir, "save_checkpoint", real_save)
    leftovers = list((part.parent / "out" / "runs").glob("*/last.pt"))
    assert len(leftovers) == 1
    counts = run_sweep(load_config(part, overrides), show_progress=False)
    assert counts["done"] == 2
    a, b = load_results(full.parent / "out"), load_results(part.parent / "out")
    assert list(a["run_id"]) == list(b["run_id"])
    pd.testing.assert_series_equal(a["test_nll"], b["test_nll"], rtol=1e-6)
    assert (b["epochs_run"] == 3).all()


def test_config_change_reruns_only_changed_runs(experiment, capsys):
    main(["run", str(experiment), "--quiet", "--only", "fold=0"])
    capsys.readouterr()
    main(["run", str(experiment), "--quiet", "--only", "fold=0", "--set", "methods=[ce, {name: alpha_js, alpha: [0.3, 0.5]}]"])
    assert "1 trained, 0 failed, 2 already finished" in capsys.readouterr().out


def test_dry_run_and_status(experiment, capsys):
    main(["run", str(experiment), "--quiet", "--only", "method=ce", "fold=1"])
    capsys.readouterr()
    assert main(["run", str(experiment), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 and sum("[   done]" in line for line in lines) == 1
    assert main(["status", str(experiment)]) == 0
    assert "9 runs: 1 done, 0 failed, 0 running, 8 pending" in capsys.readouterr().out


NAN_PLUGIN = """
from methods import Method, register_method


@register_method("nan_loss_for_test")
class NanLoss(Method):
    \"\"\"A broken objective: always NaN.\"\"\"

    citation = "none"

    def forward(self, logits, targets):
        return logits.sum() * float("nan")
"""


def test_failed_run_is_recorded_and_sweep_continues_then_retried(tmp_path, image_folder, capsys):
    (tmp_path / "nan_plugin.py").write_text(NAN_PLUGIN)
    experiment = write_config(tmp_path / "exp.yaml", image_folder, plugins=["nan_plugin.py"],
                              methods=["nan_loss_for_test", "ce"])
    assert main(["run", str(experiment), "--quiet", "--only", "fold=0"]) == 0
    assert "1 trained, 1 failed" in capsys.readouterr().out
    table = load_results(experiment.parent / "out").set_index("method")
    assert table.loc["nan_loss_for_test", "status"] == "failed"
    assert "loss is nan at epoch 1" in table.loc["nan_loss_for_test", "error"]
    assert table.loc["ce", "status"] == "done"
    assert main(["status", str(experiment)]) == 0
    assert "1 done, 1 failed, 0 running, 4 pending" in capsys.readouterr().out
    assert main(["run", str(experiment), "--quiet", "--only", "fold=0", "--retry-failed"]) == 0
    assert "0 trained, 1 failed, 1 already finished" in capsys.readouterr().out
    record = json.loads((experiment.parent / "out" / "runs" / table.loc["nan_loss_for_test", "run_id"] / "record.json").read_text())
    assert record["status"] == "failed"


def _trainer(tmp_path, batch_size: int):
    """A Trainer on fold 0 of a 36-image experiment (18 training images) with the given batch size."""
    import torch

    from benchmark.dataset import prepare
    from benchmark.plan import RunSpec
    from benchmark.train import FoldData, Trainer
    from tests.helpers import augmented_experiment

    _, path = augmented_experiment(tmp_path)
    cfg = load_config(path, [f"train.batch_size={batch_size}"])
    prepared = prepare(cfg)
    data = FoldData(prepared, prepared.folds[0], torch.device("cpu"), channels_last=False)
    return Trainer(RunSpec("r", "t", "ce", {}, "tiny_cnn", None, 0, 0, 0), cfg, data, len(prepared.class_names)), cfg


def test_only_a_last_batch_of_one_is_dropped_and_an_epoch_without_a_batch_of_two_is_refused(tmp_path):
    from benchmark.errors import UserError
    from benchmark.protocol import Fold
    from benchmark.train import check_batches

    trainer, cfg = _trainer(tmp_path, 8)
    assert trainer.n_train == 18
    sizes = {}
    for size in (2, 8, 17, 18, 100):
        trainer.batch_size = size
        sizes[size] = [len(idx) for idx, _ in trainer.epoch_batches()]
    assert sizes == {2: [2] * 9, 8: [8, 8, 2], 17: [17], 18: [18], 100: [18]}
    small = [Fold(0, 0, np.arange(2), np.arange(2, 4), np.arange(4, 6))]
    check_batches(_with_batch_size(cfg, 100), small)
    tiny = [Fold(0, 0, np.arange(3), np.arange(3, 5), np.arange(5, 7)), Fold(0, 1, np.array([5]), np.arange(2), np.arange(2, 5))]
    with pytest.raises(UserError, match=r"repeat 0 fold 1 has 1 training image"):
        check_batches(cfg, tiny)


def _with_batch_size(cfg, size: int):
    return cfg.replace(train=cfg.train.model_copy(update={"batch_size": size}))


def test_a_run_that_takes_no_training_step_is_recorded_failed_not_done(tmp_path, image_folder, monkeypatch, capsys):
    from benchmark.train import Trainer

    monkeypatch.setattr(Trainer, "epoch_batches", lambda self, steps=None: [])
    experiment = write_config(tmp_path / "exp.yaml", image_folder, methods=["ce"])
    assert main(["run", str(experiment), "--quiet", "--only", "fold=0"]) == 0
    assert "0 trained, 1 failed" in capsys.readouterr().out
    table = load_results(experiment.parent / "out")
    assert table["status"].tolist() == ["failed"]
    assert "no training batch" in table.loc[0, "error"]


def test_non_finite_validation_outputs_fail_the_run_with_a_clear_reason(experiment, monkeypatch):
    """A model whose outputs turn NaN while its loss stayed finite: the run fails saying so, not with scikit-learn's
    'Input contains NaN'."""
    from benchmark import train

    real = train.Trainer.evaluate

    def diverged(self, part):
        probs, loss = real(self, part)
        return np.full_like(probs, np.nan), loss

    monkeypatch.setattr(train.Trainer, "evaluate", diverged)
    counts = run_sweep(load_config(experiment), show_progress=False)
    assert counts["failed"] == 9 and counts["done"] == 0
    table = pd.read_csv(experiment.parent / "out" / "results.csv")
    assert table["error"].str.contains("validation outputs are not finite").all()
