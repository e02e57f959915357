"""End to end: `python -m benchmark explain` on a tiny experiment trained in the test."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.runner import run_sweep
from tests.helpers import make_image_folder, write_config

FAST = ["--images", "4", "--eval-images", "8", "--gaussian", "0", "0.1", "--salt-pepper", "0", "0.05", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Fold 0 of ce and alpha_js on tiny_cnn, one epoch on 16 px images."""
    root = tmp_path_factory.mktemp("explain")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOLDERBENCH_CACHE", str(root / "cache"))
        data = make_image_folder(root / "data", {"normal": 24, "defective": 16})
        config = write_config(root / "exp.yaml", data, methods=["ce", {"name": "alpha_js", "alpha": 0.5}],
                              train={"epochs": 1, "batch_size": 8, "optimizer": {"name": "adam", "lr": 1e-2}},
                              protocol={"folds": 2, "val_fraction": 0.25, "seed": 1})
        run_sweep(load_config(config), only={"fold": {"0"}}, show_progress=False)
    return config, root / "out"


def test_explain_writes_figures_tables_and_the_noise_it_used(trained, capsys):
    config, out = trained
    assert main(["explain", str(out), *FAST]) == 0
    folder = out / "explain"
    assert f"explain: {folder / 'explain.md'}" in capsys.readouterr().out
    for name in ("cams_tiny_cnn.png", "noise_tiny_cnn.png", "pca_tiny_cnn.png", "diversity.png", "noise.csv",
                 "noise_summary.csv", "localization.csv", "diversity.csv", "cams.json", "noise.json", "diversity.json"):
        assert (folder / name).stat().st_size > 0, name
    assert not list(out.glob(".explain.tmp-*"))
    results = pd.read_csv(out / "results.csv")
    noise = pd.read_csv(folder / "noise.csv")
    assert set(noise["run_id"]) == set(results["run_id"]) and len(results) == 2
    assert set(noise["label"]) == {"ce", "alpha_js"}
    assert noise.groupby(["noise", "cam"]).size().to_dict() == {(k, c): 4 for k in ("gaussian", "salt_pepper")
                                                                for c in ("gradcam", "gradcam++")}
    clean = noise[noise["level"] == 0]
    assert (clean["pearson"] - 1).abs().max() < 1e-9 and (clean["iou_top20"] == 1).all()
    accuracy = clean.groupby("run_id")["accuracy"].first()
    assert accuracy.to_dict() == pytest.approx(results.set_index("run_id")["test_accuracy"].to_dict(), abs=1e-12)
    spec = json.loads((folder / "noise.json").read_text())["noise"]
    assert spec["gaussian"]["levels"] == [0.0, 0.1] and spec["salt_pepper"]["levels"] == [0.0, 0.05]
    assert spec["seed"] == 0
    cams = json.loads((folder / "cams.json").read_text())
    assert len(cams["backbones"]["tiny_cnn"]["images"]) == 4
    assert cams["backbones"]["tiny_cnn"]["target_layer"] == {"path": "features", "rule": "table"}
    diversity = pd.read_csv(folder / "diversity.csv")
    assert set(diversity["label"]) == {"raw pixels", "ce", "alpha_js"}
    assert (diversity["effective_rank"] >= 1).all() and (diversity["effective_rank_ratio"] <= 1).all()
    page = (folder / "explain.md").read_text()
    for name in ("cams_tiny_cnn.png", "noise_tiny_cnn.png", "pca_tiny_cnn.png", "diversity.png", "ROAD drop"):
        assert name in page


def test_explain_is_reproducible_and_runs_can_be_chosen(trained, tmp_path):
    config, out = trained
    assert main(["explain", str(config), *FAST, "--out", str(tmp_path / "a")]) == 0
    run_id = pd.read_csv(out / "results.csv").query("method == 'ce'")["run_id"].iloc[0]
    assert main(["explain", str(out), *FAST, "--out", str(tmp_path / "b"), "--runs", run_id]) == 0
    a, b = pd.read_csv(tmp_path / "a" / "noise.csv"), pd.read_csv(tmp_path / "b" / "noise.csv")
    assert set(b["run_id"]) == {run_id}
    pd.testing.assert_frame_equal(a[a["run_id"] == run_id].reset_index(drop=True), b)


def test_diversity_only_computes_just_that(trained, tmp_path):
    _, out = trained
    assert main(["explain", str(out), "--diversity-only", "--quiet", "--out", str(tmp_path / "d")]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "diversity.csv", "diversity.json", "diversity.png", "explain.md", "pca_tiny_cnn.png"]
    frame = pd.read_csv(tmp_path / "d" / "diversity.csv")
    assert np.isfinite(frame["entropy"]).all() and len(frame) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--runs", "000000000000"], "no such run"), (["--cam", "nope"], "unknown CAM method"),
     (["--gaussian", "1.5"], "levels must lie in [0, 1]")],
)
def test_bad_input_is_a_user_error_and_writes_nothing(trained, tmp_path, capsys, extra, message):
    _, out = trained
    assert main(["explain", str(out), "--quiet", "--out", str(tmp_path / "x"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_missing_target_is_a_user_error(tmp_path, capsys):
    assert main(["explain", str(tmp_path / "nowhere")]) == 2
    assert "no such experiment file or output folder" in capsys.readouterr().err
