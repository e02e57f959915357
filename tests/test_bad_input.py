"""Every kind of bad input: one clear line on stderr naming the file/key/value and what is allowed, exit code 2,
and no output folder made. Odd but usable images (grayscale, RGBA, palette, 16-bit TIFF) are converted; unreadable
files are skipped with a warning that lists them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from benchmark.cli import main
from tests.conftest import make_image_folder, write_config

FAST = {"epochs": 1, "batch_size": 8, "threads": 1}


def _set(cfg: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        cfg = cfg.setdefault(key, {})
    cfg[last] = value


def _edit(**changes) -> Callable[[Path, Path], None]:
    """Change config keys (dotted paths) of the experiment file."""

    def apply(experiment: Path, tmp: Path) -> None:
        cfg = yaml.safe_load(experiment.read_text())
        for dotted, value in changes.items():
            _set(cfg, dotted.replace("__", "."), value(tmp) if callable(value) else value)
        experiment.write_text(yaml.safe_dump(cfg))

    return apply


def _malformed_yaml(experiment: Path, tmp: Path) -> None:
    experiment.write_text("name: t\ndata: {root: [unclosed\n")


def _data_with(counts: dict[str, int], extra: Callable[[Path], None] | None = None):
    def make(tmp: Path) -> str:
        root = make_image_folder(tmp / "odd", counts)
        if extra:
            extra(root)
        return str(root)

    return make


def _empty_class(root: Path) -> None:
    (root / "empty").mkdir()


def _no_classes(tmp: Path) -> str:
    (tmp / "bare").mkdir()
    (tmp / "bare" / "notes.txt").write_text("no class folders here")
    return str(tmp / "bare")


def _only_unreadable(tmp: Path) -> str:
    for name in ("normal", "defective"):
        (tmp / "junk" / name).mkdir(parents=True)
        for i in range(4):
            (tmp / "junk" / name / f"{i}.png").write_bytes(b"not an image at all")
    return str(tmp / "junk")


def _bad_files(root: Path) -> None:
    (root / "normal" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    good = (root / "normal" / "normal (0).png").read_bytes()
    (root / "defective" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "defective" / "readme.txt").write_text("not an image")


def _weights_for_another_model(tmp: Path) -> list[dict]:
    path = tmp / "other.pt"
    torch.save(torch.nn.Linear(5, 3).state_dict(), path)
    return [{"name": "tiny_cnn", "weights": str(path)}]


def _plugin(text: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "broken_plugin.py").write_text(text)
        return [str(tmp / "broken_plugin.py")]

    return make


def _file_in_the_way(tmp: Path) -> str:
    (tmp / "afile").write_text("a regular file")
    return str(tmp / "afile" / "out")


CASES = {
    "malformed yaml": (_malformed_yaml, ["exp.yaml", "malformed YAML", "line 3"]),
    "unknown key": (_edit(train__epoch=3), ["unknown key train.epoch", "did you mean 'epochs'"]),
    "unknown top-level key": (_edit(method=["ce"]), ["unknown key method", "did you mean 'methods'"]),
    "wrong type": (_edit(train__epochs="ten"), ["train.epochs", "expected an integer", "'ten'"]),
    "wrong type nested": (_edit(data__augment="hflip"), ["data.augment", "expected a list of hflip | vflip | rot90"]),
    "alpha above 1": (_edit(methods=[{"name": "alpha_js", "alpha": 1.5}]), ["methods[0]", "alpha", "(0, 1)", "1.5"]),
    "alpha 0": (_edit(methods=[{"name": "alpha_js", "alpha": 0}]), ["alpha", "(0, 1)"]),
    "batch size 1": (_edit(train__batch_size=1), ["train.batch_size=1", "batch of 1", "allowed: an integer ≥ 2"]),
    "folds below 2": (_edit(protocol__folds=1), ["protocol.folds", "≥ 2", "got 1"]),
    "val_fraction 1": (_edit(protocol__val_fraction=1.0), ["protocol.val_fraction", "(0, 1)"]),
    "val_fraction negative": (_edit(protocol__val_fraction=-0.1), ["protocol.val_fraction", "(0, 1)"]),
    "bad choice": (_edit(protocol__select_by="val_f2"), ["protocol.select_by", "'val_f2'", "did you mean 'val_f1'"]),
    "unknown method": (_edit(methods=["alpha_jss"]), ["methods[0]", "'alpha_jss'", "did you mean alpha_js"]),
    "unknown backbone": (_edit(backbones=["tiny_cn"]), ["backbones[0]", "'tiny_cn'", "did you mean 'tiny_cnn'"]),
    "unknown timm backbone": (_edit(backbones=["timm:resnet_18"]), ["backbones[0]", "resnet_18", "timm"]),
    "unknown method parameter": (_edit(methods=[{"name": "alpha_js", "gama": 1}]),
                                 ["methods[0]", "no parameter 'gama'", "allowed: alpha"]),
    "method parameter wrong type": (_edit(methods=[{"name": "alpha_js", "alpha": "half"}]),
                                    ["methods[0]", "alpha", "float", "'half'"]),
    "missing data folder": (_edit(data__root=lambda tmp: str(tmp / "nowhere")), ["data.root", "nowhere", "not found"]),
    "empty class folder": (_edit(data__root=_data_with({"normal": 6, "defective": 6}, _empty_class)),
                           ["class folder", "empty", "is empty"]),
    "class smaller than folds": (_edit(data__root=_data_with({"normal": 6, "defective": 2})),
                                 ["'defective'", "2 image(s)", "protocol.folds=3"]),
    "class grouping names a missing folder": (
        _edit(data__classes={"normal": ["normal"], "defective": ["defectve"]}),
        ["data.classes.defective", "'defectve'", "does not exist", "did you mean 'defective'"]),
    "positive class unknown": (_edit(data__positive="broken"), ["data.positive", "'broken'", "classes:", "normal", "defective"]),
    "no class folders": (_edit(data__root=_no_classes), ["no class sub-folders", "bare"]),
    "zero readable images": (_edit(data__root=_only_unreadable), ["no readable image", "junk", "all 8 file(s)"]),
    "unreadable files with on_bad_file error": (
        _edit(data__root=_data_with({"normal": 6, "defective": 6}, _bad_files), data__on_bad_file="error"),
        ["3 unreadable image file(s)", "data.on_bad_file: skip"]),
    "output under a regular file": (_edit(run__output=_file_in_the_way),
                                    ["run.output", "afile", "cannot be created"]),
    "weights file missing": (_edit(backbones=[{"name": "tiny_cnn", "weights": "missing.pt"}]),
                             ["backbones[0].weights", "missing.pt", "does not exist"]),
    "weights for another model": (_edit(backbones=_weights_for_another_model),
                                  ["other.pt", "does not match backbone 'tiny_cnn'"]),
    "plugin does not import": (_edit(plugins=_plugin("import not_a_module_anywhere\n")),
                               ["plugin", "broken_plugin.py", "failed to load", "not_a_module_anywhere"]),
    "plugin with a syntax error": (_edit(plugins=_plugin("def broken(:\n")),
                                   ["plugin", "broken_plugin.py", "failed to load", "SyntaxError"]),
    "plugin file missing": (_edit(plugins=["nope_plugin.py"]), ["plugin", "nope_plugin.py", "does not exist"]),
    "device unavailable": (_edit(run__device="cuda:0"), ["run.device", "CUDA", "not available"]),
    "device unknown": (_edit(run__device="tpu"), ["run.device", "'tpu'", "cuda:N"]),
    "executor unknown": (_edit(run__executor="slurm"), ["run.executor", "'slurm'", "allowed: local, ray"]),
    "ray cluster unreachable": (_edit(run__executor="ray", run__ray={"address": "127.0.0.1:1"}),
                                ["run.ray.address", "'127.0.0.1:1'", "cannot connect", "ray start --head"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line_exit_2_and_nothing_written(name, tmp_path, image_folder, capsys):
    if name == "device unavailable" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    if name.startswith("ray") and pytest.importorskip("ray").is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    break_it, words = CASES[name]
    experiment = write_config(tmp_path / "exp.yaml", image_folder, train=FAST)
    break_it(experiment, tmp_path)
    code = main(["run", str(experiment), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert not (tmp_path / "out").exists() and not (tmp_path / "afile" / "out").exists()


def test_bad_input_leaves_an_existing_output_folder_untouched(tmp_path, image_folder, capsys):
    experiment = write_config(tmp_path / "exp.yaml", image_folder, methods=["ce"], train=FAST)
    assert main(["run", str(experiment), "--quiet", "--only", "fold=0"]) == 0
    out = tmp_path / "out"

    def snapshot() -> dict[str, tuple[str, int]]:
        return {str(p.relative_to(out)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
                for p in out.rglob("*") if p.is_file()}

    before = snapshot()
    _edit(backbones=_weights_for_another_model)(experiment, tmp_path)
    capsys.readouterr()
    assert main(["run", str(experiment), "--quiet"]) == 2
    assert "does not match backbone" in capsys.readouterr().err
    assert snapshot() == before


def _odd_images(root: Path) -> int:
    """Add grayscale, RGBA, palette and 16-bit TIFF images to each class; returns how many."""
    rng = np.random.default_rng(1)
    for k, name in enumerate(("normal", "defective")):
        base = 60 + 80 * k
        gray = np.clip(rng.normal(base, 40, (16, 16)), 0, 255).astype(np.uint8)
        Image.fromarray(gray, "L").save(root / name / "gray.png")
        rgba = np.dstack([gray, gray, gray, np.full_like(gray, 200)])
        Image.fromarray(rgba, "RGBA").save(root / name / "rgba.png")
        Image.fromarray(np.dstack([gray] * 3)).convert("P", palette=Image.Palette.ADAPTIVE).save(root / name / "pal.png")
        Image.fromarray(gray.astype(np.uint16) * 257).save(root / name / "deep.tif")
    return 8


def test_odd_image_modes_are_converted_and_the_run_completes(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", {"normal": 8, "defective": 8})
    n = 16 + _odd_images(root)
    assert Image.open(root / "normal" / "deep.tif").mode.startswith("I;16")
    experiment = write_config(tmp_path / "exp.yaml", root, methods=["ce"], train=FAST)
    assert main(["run", str(experiment), "--quiet", "--only", "fold=0"]) == 0
    assert "warning" not in capsys.readouterr().err
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert table["status"].tolist() == ["done"]
    assert int(table[["n_train", "n_val", "n_test"]].sum(axis=1).iloc[0]) == n


def test_unreadable_files_are_skipped_with_a_warning_listing_them(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", {"normal": 8, "defective": 8})
    _bad_files(root)
    experiment = write_config(tmp_path / "exp.yaml", root, methods=["ce"], train=FAST)
    assert main(["run", str(experiment), "--quiet", "--only", "fold=0"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1
    assert all(name in warnings[0] for name in ("skipped 3", "corrupt.png", "truncated.png", "readme.txt"))
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert table["status"].tolist() == ["done"]
    assert int(table[["n_train", "n_val", "n_test"]].sum(axis=1).iloc[0]) == 16
