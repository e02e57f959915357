"""`run --dry-run` states the cost before starting: runs and estimated time per backbone, and the total."""

from __future__ import annotations

import re

import pytest

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.estimate import Probe, run_seconds
from benchmark.runner import open_sweep
from tests.helpers import write_config


def test_dry_run_prints_runs_and_estimated_time_per_backbone(tmp_path, image_folder, capsys):
    path = write_config(tmp_path / "exp.yaml", image_folder, backbones=["tiny_cnn", "small_cnn"],
                        run={"output": str(tmp_path / "out"), "device": "cpu", "workers": 2})
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["tiny_cnn"], ["small_cnn"])}
    assert rows["tiny_cnn"][1:3] == ["9", "9"] and rows["small_cnn"][1:3] == ["9", "9"]
    total = re.search(r"total: 18 pending of 18 runs ≈ [\d.]+ CPU-worker-hours \((\d+) s on one worker\); "
                      r"≈ (\d+) s wall with 2 worker\(s\) on cpu", out)
    assert total and int(total.group(1)) >= int(total.group(2)) >= 0
    assert not (tmp_path / "out").exists()


def test_no_estimate_skips_the_probe(tmp_path, image_folder, capsys):
    path = write_config(tmp_path / "exp.yaml", image_folder)
    assert main(["run", str(path), "--dry-run", "--no-estimate"]) == 0
    assert "total:" not in capsys.readouterr().err


def test_run_seconds_counts_epochs_steps_and_evaluated_images(tmp_path, image_folder):
    path = write_config(tmp_path / "exp.yaml", image_folder, train={"epochs": 3, "batch_size": 5})
    cfg = load_config(path)
    sweep = open_sweep(cfg, decode_images=False)
    run = sweep.runs[0]
    fold = sweep.prepared.folds[0]
    n_train, n_val, n_test = len(fold.train), len(fold.val), len(fold.test)
    steps = -(-n_train // 5) if n_train % 5 != 1 else n_train // 5
    expected = 3 * (steps * 0.5 + n_val * 0.01 + 0.2) + n_test * 0.01
    assert run_seconds(run, cfg, sweep.prepared, Probe(0.5, 0.01, 0.2)) == pytest.approx(expected)
