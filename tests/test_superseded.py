"""An edited config never mixes old and new runs: tables and the report hold the current plan's runs only; the
older records stay on disk, counted as superseded."""

from __future__ import annotations

import json

import pandas as pd

from benchmark.cli import main
from tests.helpers import write_config


def test_edited_config_tables_hold_only_the_current_runs(tmp_path, image_folder, capsys):
    path = write_config(tmp_path / "exp.yaml", image_folder, methods=["ce", "label_smoothing"], train={"epochs": 1})
    out = tmp_path / "out"
    assert main(["run", str(path), "--quiet"]) == 0
    first = set(pd.read_csv(out / "results.csv")["run_id"])
    assert main(["run", str(path), "--quiet", "--set", "train.epochs=2"]) == 0
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 6 and not set(table["run_id"]) & first
    assert set(pd.read_csv(out / "epochs.csv").groupby("run_id")["epoch"].max()) == {2}
    assert len(list((out / "runs").glob("*/record.json"))) == 12
    capsys.readouterr()
    assert main(["status", str(path), "--set", "train.epochs=2"]) == 0
    status = capsys.readouterr().out
    assert "6 runs: 6 done" in status and "6 superseded record(s)" in status
    report = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report)]) == 0
    assert "6 older record(s)" in capsys.readouterr().err
    reported = pd.read_csv(report / "results.csv")
    assert set(reported["run_id"]) == set(table["run_id"])
    assert set(json.loads((out / "plan.json").read_text())["run_ids"]) == set(table["run_id"])
