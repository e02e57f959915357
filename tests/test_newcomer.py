"""A newcomer's path: `init` drafts an experiment from a folder, every command takes the output folder, `status` shows
interrupted runs, `list experiments`, `report A B`, design warnings, short labels and the ETA."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from benchmark.cli import main as cli
from benchmark.config import load_config
from benchmark.data.folders import scan
from benchmark.design import cam_map_side, few_folds, flat_cams, last_epoch_runs, small_validation
from benchmark.errors import UserError
from benchmark.protocol import ProtocolSpec, make_folds
from benchmark.report.columns import short_label, short_labels
from benchmark.runner import run_sweep
from tests.helpers import make_image_folder, write_config


def _folder(root: Path, sizes: dict[str, tuple[int, int]], seed: int = 0) -> Path:
    """Class folders of smooth random PNGs: class -> (count, side)."""
    rng = np.random.default_rng(seed)
    for name, (n, side) in sizes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            low = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
            Image.fromarray(low).resize((side, side), Image.Resampling.BICUBIC).save(root / name / f"{name} {i}.png")
    return root


def _init(tmp_path: Path, folder: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "drafted.yaml"
    return cli(["init", str(folder), "-o", str(out), "--backbone", "tiny_cnn", *extra]), out


def test_init_drafts_a_file_that_fits_the_folder(tmp_path):
    """Three classes, the smallest of 20 images, one class of small crops (a size cue), a copied file: the draft has
    the most folds that still work, macro-F1, the resize and grouping mitigations, the cost, and loads as is."""
    folder = _folder(tmp_path / "data", {"a": (30, 40), "b": (30, 40), "c": (20, 12)})
    shutil.copy(folder / "a" / "a 0.png", folder / "a" / "a copy.png")
    code, out = _init(tmp_path, folder)
    assert code == 0
    text = out.read_text()
    raw = yaml.safe_load(text)
    cfg = load_config(out)
    assert raw["data"]["positive"] is None and raw["protocol"]["select_by"] == "val_macro_f1"
    assert raw["data"]["resize"] == {"policy": "via", "via": 12}  # the small class's side, a multiple of 4
    assert raw["protocol"]["group_by"] == "duplicates"
    files = scan(folder)
    k = raw["protocol"]["folds"]
    make_folds(files, ProtocolSpec(folds=k, val_fraction=0.15, group_by="duplicates"))
    if k < 5:  # the most that work: one more fold leaves some part without a class
        with pytest.raises(UserError):
            make_folds(files, ProtocolSpec(folds=k + 1, val_fraction=0.15, group_by="duplicates"))
    assert cfg.data.image_size >= 8 and cfg.backbones == ["tiny_cnn"] and cfg.name == "drafted"
    assert "# Cost here" in text and "pending of" in text and "CPU-worker-hours" in text
    assert "WARNING" in text or "CAUTION" in text  # the audit's findings are in the header


def test_init_two_classes_reports_f1_of_the_rarer_class(tmp_path):
    folder = make_image_folder(tmp_path / "data", {"good": 30, "bad": 12}, size=24)
    code, out = _init(tmp_path, folder, "--no-estimate")
    raw = yaml.safe_load(out.read_text())
    assert code == 0 and raw["data"]["positive"] == "bad" and raw["protocol"]["select_by"] == "val_f1"
    assert "resize" in raw["data"] and raw["data"]["resize"]["policy"] == "stretch"


def test_init_refuses_to_overwrite(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "data", {"good": 12, "bad": 12})
    out = tmp_path / "mine.yaml"
    out.write_text("my notes\n")
    assert cli(["init", str(folder), "-o", str(out)]) == 2
    assert out.read_text() == "my notes\n"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists" in err[0] and "nothing written" in err[0]


@pytest.fixture
def finished(tmp_path) -> Path:
    """A finished two-run sweep (its experiment file; --set methods=[ce] protocol.folds=2)."""
    folder = make_image_folder(tmp_path / "data", {"normal": 16, "defective": 12})
    path = write_config(tmp_path / "exp" / "exp.yaml", folder, protocol={"folds": 2, "val_fraction": 0.3, "seed": 1})
    run_sweep(load_config(path, ["methods=[ce]"]), show_progress=False)
    return path


def test_status_takes_the_output_folder_and_shows_resumes(finished, capsys):
    """The output folder stands for the file and its --set overrides; a run with a saved epoch is 'resumes'."""
    from benchmark.rundir import RunDir

    out = finished.parent / "out"
    assert cli(["status", str(out)]) == 0
    by_folder = capsys.readouterr().out
    assert cli(["status", str(finished), "--set", "methods=[ce]"]) == 0
    assert capsys.readouterr().out == by_folder and "2 done" in by_folder
    run = sorted((out / "runs").iterdir())[0]
    (run / "record.json").rename(run / "record.json.away")
    RunDir(run).save_last({"epoch": 1, "model": {}})
    assert cli(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 pending (of which 1 interrupted" in text
    assert f"resumes {run.name} ce tiny_cnn" in text and "after epoch 1 of 2" in text and "at epoch 2" in text


def test_list_experiments_and_report_side_by_side(finished, tmp_path, capsys, monkeypatch):
    other = write_config(tmp_path / "exp2" / "exp.yaml", finished.parent.parent / "data", name="second",
                         protocol={"folds": 2, "val_fraction": 0.3, "seed": 1})
    run_sweep(load_config(other, ["methods=[{name: focal, gamma: 2.0825030551671313}]"]), show_progress=False)
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    for source, name in ((finished.parent / "out", "t"), (other.parent / "out", "second")):
        shutil.copytree(source, runs / name)
    assert cli(["list", "experiments"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["experiment", "output", "folder", "runs", "done"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["t"][1:5] == ["runs/t", "2", "2", "0"] and rows["second"][1:5] == ["runs/second", "2", "2", "0"]
    assert cli(["report", "runs/t", "runs/second", "--no-figures"]) == 0
    text = capsys.readouterr().out
    assert "reports/t/index.html" in text and "reports/second/index.html" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert "t: tiny_cnn Accuracy (%)" in table[0] and "second: tiny_cnn Accuracy (%)" in table[0]
    ce = next(line for line in table if line.startswith("| ce "))
    focal = next(line for line in table if line.startswith("| focal"))
    assert ce.split("|")[4].strip() == "-" and focal.split("|")[2].strip() == "-"  # each only in its own experiment
    perf = pd.read_csv(tmp_path / "reports" / "t" / "tables" / "performance.csv", dtype=str)
    assert perf.iloc[0, 1] in ce
    assert "| focal(gamma=2.083) " in focal  # shown to 4 significant digits; the records keep every digit
    kept = pd.read_csv(runs / "second" / "results.csv")["method_label"]
    assert list(kept.unique()) == ["focal(gamma=2.0825030551671313)"]
    assert "focal(gamma=2.0825030551671313)" in (tmp_path / "reports" / "second" / "results.csv").read_text()
    assert cli(["report", "runs/t", "runs/second", "--out", "x"]) == 2 and not (tmp_path / "x").exists()


def test_design_warnings_thresholds():
    assert few_folds(5) is None and "t = 4.30" in few_folds(3)  # t(0.975, 2 df) = 4.303 (tables)
    assert "t = 12.71" in few_folds(2) and "a single train/test split" in few_folds(1)
    assert small_validation(50) is None and "steps of 8.3 pp" in small_validation(12)
    results = pd.DataFrame({"status": ["done"] * 10, "selected_epoch": [12, 12, 5, 7, 8, 9, 10, 11, 3, 4],
                            "epochs_run": [12] * 10})
    assert "2 of 10 runs selected their last epoch (12)" in last_epoch_runs(results, 12, "val_f1")
    assert last_epoch_runs(results, 12, "last") is None
    early = results.assign(epochs_run=[12, 9] + [12] * 8, selected_epoch=[12, 9, 5, 7, 8, 9, 10, 11, 3, 4])
    assert "1 of 10 runs" in last_epoch_runs(early, 12, "val_f1")  # an early-stopped run is not under-trained
    assert last_epoch_runs(early.iloc[1:], 12, "val_f1") is None  # none left


def test_flat_cam_threshold_measured_on_the_models():
    """ResNets stride 32: a 32 px input leaves a 1×1 last stage (flat maps), 33 px and more at least 2×2."""
    assert cam_map_side("resnet18", 32) == 1 and cam_map_side("resnet18", 40) == 2 and cam_map_side("resnet18", 64) == 2
    assert "resnet18" in flat_cams(["resnet18", "tiny_cnn"], 32) and "tiny_cnn" not in flat_cams(["resnet18", "tiny_cnn"], 32)
    assert flat_cams(["resnet18"], 64) is None


def test_dry_run_prints_design_warnings(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "data", {"normal": 16, "defective": 12})
    path = write_config(tmp_path / "exp.yaml", folder, protocol={"folds": 2, "val_fraction": 0.3, "seed": 1})
    assert cli(["run", str(path), "--dry-run", "--no-estimate"]) == 0
    err = capsys.readouterr().err
    assert "design warning: 2 paired fold(s)" in err and "design warning: the smallest validation part" in err


def test_labels_round_floats_for_display_only():
    assert short_label("entropy_weighted_ce(weight=2.0825030551671313)") == "entropy_weighted_ce(weight=2.083)"
    assert short_label("alpha_js(alpha=0.1, beta=1.0, variant=correct)") == "alpha_js(alpha=0.1, beta=1.0, variant=correct)"
    assert short_label("m(lr=0.00031234, n=12, b=timm:vit_1.5)") == "m(lr=0.0003123, n=12, b=timm:vit_1.5)"
    clash = pd.Series(["m(w=2.08250)", "m(w=2.08251)"])  # equal at 4 digits: kept as they are
    assert list(short_labels(clash)) == list(clash)


def test_eta_rescales_by_the_finished_runs(monkeypatch):
    from benchmark import estimate

    clock = iter([0.0, 30.0])
    monkeypatch.setattr(estimate.time, "perf_counter", lambda: next(clock))
    eta = estimate.Eta({"a": 20.0, "b": 20.0, "c": 40.0}, workers=2)
    assert eta.text() == "≈ 40 s left (cost estimate)"  # (20 + 20 + 40) / 2 workers
    eta.done("a")  # took 30 s instead of 20 on one of two workers: pace 30 * 2 / 20 = 3
    assert eta.text() == "≈ 90 s left (cost estimate)"  # (20 + 40) / 2 * 3
