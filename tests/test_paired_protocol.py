"""The protocol is paired: every method sees the same test files per fold; the split layout runs end to end."""

import json

import pandas as pd

from benchmark.cli import main
from benchmark.store import load_results
from tests.helpers import make_image_folder, write_config


def test_every_method_is_tested_on_the_same_files_per_fold(tmp_path, image_folder):
    experiment = write_config(tmp_path / "exp.yaml", image_folder, train={"epochs": 1})
    assert main(["run", str(experiment), "--quiet"]) == 0
    out = experiment.parent / "out"
    table = load_results(out)
    folds = json.loads((out / "folds.json").read_text())
    for fold, group in table.groupby("fold"):
        test_files = [sorted(pd.read_csv(out / "runs" / rid / "predictions.csv")["file"]) for rid in group["run_id"]]
        assert all(files == test_files[0] for files in test_files)
        assert test_files[0] == sorted(folds["folds"][fold]["test"])
        assert not set(folds["folds"][fold]["train"]) & set(test_files[0])
    assert table["folds_fingerprint"].nunique() == 1 and table["folds_fingerprint"].iloc[0] == folds["fingerprint"]


def test_split_layout_with_valid_folder_runs(tmp_path):
    for part in ("train", "valid", "test"):
        make_image_folder(tmp_path / "split" / part, {"normal": 8, "defective": 6}, seed=len(part))
    experiment = write_config(
        tmp_path / "exp.yaml",
        tmp_path / "split",
        data={"root": str(tmp_path / "split"), "layout": "split", "image_size": 16, "positive": "defective"},
        protocol={"kind": "fixed"},
        methods=["ce"],
        train={"epochs": 1},
    )
    assert main(["run", str(experiment), "--quiet"]) == 0
    table = load_results(experiment.parent / "out")
    assert len(table) == 1 and table.loc[0, "status"] == "done"
    assert (table.loc[0, "n_train"], table.loc[0, "n_val"], table.loc[0, "n_test"]) == (14, 14, 14)
    preds = pd.read_csv(experiment.parent / "out" / "runs" / table.loc[0, "run_id"] / "predictions.csv")
    assert preds["file"].str.startswith("test/").all()
