"""`python -m benchmark audit`: folder and experiment-file modes, outputs, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.cli import main
from tests.helpers import write_config


def make_folder(root: Path, sizes: dict[str, int], n: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for name, size in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            low = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
            Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC).save(root / name / f"{name} ({i}).png")
    return root


def test_folder_mode_writes_json_and_markdown(tmp_path, capsys):
    folder = make_folder(tmp_path / "data", {"normal": 16, "short": 48})
    out = tmp_path / "audit out"
    assert main(["audit", str(folder), "--out", str(out), "--image-size", "32", "--trees", "10"]) == 0
    result = json.loads((out / "audit.json").read_text())
    assert result["settings"]["folds"] == "experiment"
    assert [c["count"] for c in result["inventory"]["classes"]] == [10, 10]
    assert (out / "audit.md").read_text().startswith("## Data audit")
    assert "image size" in capsys.readouterr().out
    assert not list(out.glob("*.tmp"))


def test_folder_mode_default_out_merge_and_via(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "solder", {"normal": 16, "short": 40, "shifted": 40})
    monkeypatch.chdir(tmp_path)
    argv = ["audit", str(folder), "--merge", "defective=short,shifted", "--positive", "defective",
            "--resize", "via", "--via", "8", "--image-size", "32", "--folds", "3", "--trees", "10"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "audit-solder" / "audit.json").read_text())
    assert result["dataset"]["classes"] == ["defective", "normal"]
    assert (result["settings"]["resize_policy"], result["settings"]["via"]) == ("via", 8)
    assert [t["key"] for t in result["shortcuts"]["tasks"]] == ["task", "within:defective"]
    assert result["settings"]["n_folds"] == 3


def test_experiment_file_mode_uses_overrides_and_run_output(tmp_path):
    folder = make_folder(tmp_path / "data", {"normal": 16, "defective": 16}, n=9)
    config = write_config(tmp_path / "exp" / "e.yaml", folder)
    argv = ["audit", str(config), "--set", "data.resize.policy=via", "--set", "data.resize.via=8", "--trees", "10"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "exp" / "out" / "audit.json").read_text())
    assert (result["settings"]["resize_policy"], result["settings"]["via"]) == ("via", 8)
    assert result["settings"]["positive"] == "defective"
    assert len(result["leakage"]["folds"]) == 3  # the experiment's protocol.folds


def test_user_errors_exit_2(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    folder = make_folder(tmp_path / "data", {"a": 16, "b": 16})
    assert main(["audit", str(folder), "--resize", "via"]) == 2
    assert main(["audit", str(folder), "--merge", "nonsense"]) == 2
    assert main(["audit", str(folder), "--positive", "c"]) == 2
    assert main(["audit", str(folder), "--folds", "20"]) == 2
    assert "--folds" in capsys.readouterr().err
    assert not (Path.cwd() / "audit-data").exists()
