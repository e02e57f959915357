"""Every kind of bad input: one clear line on stderr naming the file/key/value and what is allowed, exit code 2,
and no output folder made. Odd but usable images (grayscale, RGBA, palette, 16-bit TIFF) are converted; unreadable
files are skipped with a warning that lists them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from benchmark.cli import main
from tests.helpers import make_image_folder, write_config

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


def _split_data(parts: dict[str, dict[str, int]], extra: Callable[[Path], None] | None = None):
    """A split-layout data folder: {part folder: {class: count}}; `extra` may change it further."""

    def make(tmp: Path) -> str:
        root = tmp / "split"
        for part, counts in parts.items():
            (root / part).mkdir(parents=True)
            make_image_folder(root / part, counts)
        if extra:
            extra(root)
        return str(root)

    return make


SPLIT = {"train": {"normal": 8, "defective": 8}, "valid": {"normal": 3, "defective": 3},
         "test": {"normal": 3, "defective": 3}}


def _split_edit(parts: dict[str, dict[str, int]], extra: Callable[[Path], None] | None = None):
    return _edit(data__root=_split_data(parts, extra), data__layout="split", protocol__kind="fixed")


def _raw(text: str) -> Callable[[Path, Path], None]:
    """Replace the experiment file by `text`, with {data} standing for the image folder and {out} for run.output."""

    def apply(experiment: Path, tmp: Path) -> None:
        experiment.write_text(text.format(data=tmp / "data", out=tmp / "out"))

    return apply


BASE = "data: {{root: '{data}', image_size: 16}}\nmethods: [ce]\nbackbones: [tiny_cnn]\nrun: {{output: '{out}', device: cpu}}\n"


def _alias_bomb(levels: int) -> str:
    """'billion laughs': each level an anchored list of nine aliases of the one before (9**levels strings)."""
    lines = ['name: [&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"],']
    lines += [f"  &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]," for k in range(1, levels)]
    return "\n".join(lines) + "]\n" + BASE


def _non_utf8_class(root: Path) -> None:
    os.mkdir(os.fsencode(root) + b"/bad\xff")
    os.rename(root / "normal" / "normal (0).png", os.fsencode(root) + b"/bad\xff/x.png")


def _linked_class(root: Path) -> None:
    (root / "copy").symlink_to(root / "normal")


def _junk_class(root: Path) -> None:
    (root / "junk").mkdir()
    for i in range(4):
        (root / "junk" / f"{i}.png").write_bytes(b"not an image")


CASES = {
    "malformed yaml": (_malformed_yaml, ["exp.yaml", "malformed YAML", "line 3"]),
    "unknown key": (_edit(train__epoch=3), ["unknown key train.epoch", "did you mean 'epochs'"]),
    "unknown top-level key": (_edit(method=["ce"]), ["unknown key method", "did you mean 'methods'"]),
    "wrong type": (_edit(train__epochs="ten"), ["train.epochs", "expected an integer", "'ten'"]),
    "wrong type nested": (_edit(data__augment="hflip"), ["data.augment", "expected a list of hflip | vflip | rot90"]),
    "alpha above 1": (_edit(methods=[{"name": "alpha_js", "alpha": 1.5}]), ["methods[0]", "alpha", "(0, 1)", "1.5"]),
    "alpha 0": (_edit(methods=[{"name": "alpha_js", "alpha": 0}]), ["alpha", "(0, 1)"]),
    "batch size 1": (_edit(train__batch_size=1), ["train.batch_size", "must be ≥ 2", "got 1"]),
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
    # dataset layouts
    "split: two filled validation folders": (
        _split_edit({**SPLIT, "validation": {"normal": 3, "defective": 3}}),
        ["layout 'split'", "validation/ and valid/", "ambiguous"]),
    "split: test lacks a class": (_split_edit({**SPLIT, "test": {"normal": 3}}),
                                  ["layout 'split'", "test", "lacks the class folder(s) defective"]),
    "split: validation lacks a mapped folder": (
        _split_edit({**SPLIT, "valid": {"normal": 3, "defective": 3}},
                    lambda root: (root / "valid" / "defective").rename(root / "valid" / "broken")),
        ["valid", "lacks the class folder(s) defective"]),
    "split: a class only in test": (_split_edit({**SPLIT, "test": {"normal": 3, "defective": 3, "weird": 2}}),
                                    ["test", "class folder(s) weird", "train/ lacks", "data.classes"]),
    "class folder name not UTF-8": (_edit(data__root=_data_with({"normal": 6, "defective": 6}, _non_utf8_class)),
                                    ["class folder name", "bad\\udcff", "not valid UTF-8"]),
    "two class folders are one folder": (_edit(data__root=_data_with({"normal": 6, "defective": 6}, _linked_class)),
                                         ["class folders", "copy", "normal", "are the same folder"]),
    # YAML that loads but is ambiguous or hostile
    "key given twice": (_raw("name: t\n" + BASE + "name: u\n"), ["exp.yaml", "line 6", "key 'name' is given twice",
                                                                 "first at line 1"]),
    "nested key given twice": (_raw("name: t\ntrain: {{epochs: 1, batch_size: 8, epochs: 3}}\n" + BASE),
                               ["exp.yaml", "line 2", "key 'epochs' is given twice"]),
    "alias bomb": (_raw(_alias_bomb(6)), ["exp.yaml", "aliases", "more than 100000 values"]),
    "recursive alias": (_raw("name: &a [*a]\n" + BASE), ["exp.yaml", "recursive alias"]),
    "nested too deeply": (_raw("name: " + "[" * 3000 + "]" * 3000 + "\n" + BASE), ["exp.yaml", "nested too deeply"]),
    "huge experiment file": (_raw("name: t\n" + BASE + "#" * 80 + "\n" * 20_000 + "#" * (1 << 20) + "\n"),
                             ["exp.yaml", "bytes", "at most 1048576"]),
    "huge value echoed": (_edit(name=["x" * 5000]), ["name", "expected a string", "xxx", "cut"]),
    "huge method parameter echoed": (_edit(methods=[{"name": "alpha_js", "alpha": "h" * 5000}]),
                                     ["methods[0]", "alpha", "hhh...hhh"]),
    "huge method name echoed": (_edit(methods=["m" * 5000]), ["methods[0]", "unknown method", "mmm...mmm"]),
    "huge backbone name echoed": (_edit(backbones=["b" * 5000]), ["backbones[0]", "unknown backbone", "bbb...bbb"]),
    # values that pass the schema and then crash inside scikit-learn, NumPy or torch
    "lr infinite": (_edit(train__optimizer__lr=float("inf")), ["train.optimizer.lr", "finite", "inf"]),
    "weight decay nan": (_edit(train__optimizer__weight_decay=float("nan")),
                         ["train.optimizer.weight_decay", "finite", "nan"]),
    "protocol seed above 2**32-1": (_edit(protocol__seed=2**32), ["protocol.seed", "0..4294967295", "4294967296"]),
    "protocol seed negative": (_edit(protocol__seed=-1), ["protocol.seed", "0..4294967295", "got -1"]),
    "protocol seed overflows the inner splits": (_edit(protocol__seed=5_000_000),
                                                 ["protocol.seed", "0..4294967", "protocol.folds=3", "5000000"]),
    "run seed negative": (_edit(seeds=[0, -1]), ["seeds", "0..4294967295", "[0, -1]"]),
    "run seed too big": (_edit(seeds=[2**64]), ["seeds", "0..4294967295", "18446744073709551616"]),
    "val_fraction leaves too few validation images": (_edit(protocol__val_fraction=0.01),
                                                      ["protocol.val_fraction=0.01", "validation", "fold 0"]),
    "a fold's validation part lacks a class": (
        _edit(data__root=_data_with({"normal": 24, "defective": 4}), protocol__val_fraction=0.1),
        ["protocol.folds=3", "protocol.val_fraction=0.1", "no validation image of class 'defective'"]),
    "unstratified folds leave a class out of a test part": (
        _edit(data__root=_data_with({"normal": 24, "defective": 3}), protocol__stratify=False),
        ["gets no", "image of class 'defective'", "turn on protocol.stratify"]),
    "group_by with fewer groups than folds": (_edit(protocol__group_by="(normal|defective)"),
                                              ["protocol.group_by", "2 group(s)", "protocol.folds=3"]),
    "device mps not there": (_edit(run__device="mps"), ["run.device", "'mps'", "not available"]),
    "device cuda not there": (_edit(run__device="cuda"), ["run.device", "'cuda'", "not available"]),
    "folder in two classes": (_edit(data__classes={"normal": ["normal"], "both": ["normal", "defective"]}),
                              ["data.classes", "'normal'", "two classes", "'both'"]),
    "folder twice in one class": (_edit(data__classes={"normal": ["normal", "normal"], "defective": ["defective"]}),
                                  ["data.classes", "'normal'", "twice"]),
    "output inside the data folder": (_edit(run__output=lambda tmp: str(tmp / "data" / "out")),
                                      ["run.output", "inside data.root", "data"]),
    # everything knowable before training
    "one class folder": (_edit(data__root=_data_with({"normal": 12}), data__positive=None),
                         ["only one class folder", "normal", "at least two"]),
    "a class with no readable image": (
        _edit(data__root=_data_with({"normal": 12, "defective": 6}, _junk_class), data__positive=None),
        ["class 'junk'", "no readable image"]),
    "--only value matching nothing": (_edit(), ["--only fold=7", "matches no run", "fold values: 0, 1, 2"],
                                      ["--only", "fold=7"]),
    "--only method matching nothing": (_edit(), ["--only method=alpha_js", "method values: ce"],
                                       ["--only", "method=alpha_js"]),
    "--only in a dry run": (_edit(), ["--only seed=1", "seed values: 0"], ["--dry-run", "--only", "seed=1"]),
    "backbone needs bigger images": (_edit(backbones=["googlenet"]),
                                     ["data.image_size", "16", "'googlenet'", "at least 32"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line_exit_2_and_nothing_written(name, tmp_path, image_folder, capsys):
    if name in ("device unavailable", "device cuda not there") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    if name == "device mps not there" and torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    if name.startswith("ray") and pytest.importorskip("ray").is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    break_it, words, *args = CASES[name]
    experiment = write_config(tmp_path / "exp.yaml", image_folder, methods=["ce"], train=FAST)
    break_it(experiment, tmp_path)
    code = main(["run", str(experiment), "--quiet", *(args[0] if args else [])])
    err = capsys.readouterr().err
    assert code == 2, err[:2000]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[:2000]
    assert len(lines[0]) < 1000, f"{len(lines[0])} characters: {lines[0][:300]}..."
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert not [p for p in tmp_path.rglob("out")], "an output folder was made"


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


def _sub_folder(root: Path) -> str:
    make_image_folder(root / "normal", {"nested": 3})
    return "normal/nested"


def _dangling_link(root: Path) -> str:
    (root / "normal" / "gone.png").symlink_to(root / "nothing-here.png")
    return "normal/gone.png"


def _looping_link(root: Path) -> str:
    (root / "normal" / "loop.png").symlink_to(root / "normal" / "loop.png")
    return "normal/loop.png"


def _fifo(root: Path) -> str:
    os.mkfifo(root / "normal" / "pipe.png")
    return "normal/pipe.png"


def _non_utf8_file(root: Path) -> str:
    (Path(os.fsdecode(os.fsencode(root / "normal") + b"/bad\xff.png"))).write_bytes(
        (root / "normal" / "normal (0).png").read_bytes())
    return "normal/bad\\udcff.png"


IGNORED = {"sub-folder in a class folder": (_sub_folder, "a sub-folder"), "dangling link": (_dangling_link, "a link to nothing"),
           "looping link": (_looping_link, "a link that loops"), "FIFO": (_fifo, "a FIFO"),
           "file name not UTF-8": (_non_utf8_file, "not valid UTF-8")}


@pytest.mark.parametrize("name", list(IGNORED))
def test_entries_that_are_not_images_are_ignored_with_a_warning_naming_them(name, tmp_path, capsys):
    make_odd, reason = IGNORED[name]
    root = make_image_folder(tmp_path / "data", {"normal": 8, "defective": 8})
    shown = make_odd(root)
    experiment = write_config(tmp_path / "exp.yaml", root, methods=["ce"], train=FAST)
    assert main(["run", str(experiment), "--quiet", "--only", "fold=0"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "ignored 1 item(s)" in warnings[0], warnings
    assert shown in warnings[0] and reason in warnings[0], warnings[0]
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert table["status"].tolist() == ["done"]
    assert int(table[["n_train", "n_val", "n_test"]].sum(axis=1).iloc[0]) == 16


def test_split_layout_uses_the_filled_validation_folder_beside_an_empty_one(tmp_path, capsys):
    """The published script makes an empty validation/ beside the valid/ it reads."""
    root = Path(_split_data(SPLIT, lambda r: (r / "validation").mkdir())(tmp_path))
    experiment = write_config(tmp_path / "exp.yaml", root, methods=["ce"], train=FAST,
                              protocol={"kind": "fixed"}, data={"root": str(root), "layout": "split",
                                                                "image_size": 16, "positive": "defective"})
    assert main(["run", str(experiment), "--quiet"]) == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert table[["n_train", "n_val", "n_test"]].iloc[0].tolist() == [16, 6, 6]


def test_file_names_with_a_newline_neither_crash_nor_forge_a_line(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", {"normal": 8, "defective": 8})
    (root / "normal" / "good\nerror: forged.png").write_bytes((root / "normal" / "normal (0).png").read_bytes())
    (root / "defective" / "junk\nerror: forged.png").write_bytes(b"not an image")
    experiment = write_config(tmp_path / "exp.yaml", root, methods=["ce"], train=FAST)
    assert main(["run", str(experiment), "--quiet", "--only", "fold=0"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert not [line for line in err if line.startswith("error")], err
    (warning,) = [line for line in err if line.startswith("warning")]
    assert "junk\\nerror: forged.png" in warning
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert table["status"].tolist() == ["done"]
    assert int(table[["n_train", "n_val", "n_test"]].sum(axis=1).iloc[0]) == 17
    assert main(["status", str(experiment)]) == 0
    out = tmp_path / "audit"
    assert main(["audit", str(root), "--out", str(out), "--image-size", "16", "--trees", "5"]) == 0
    printed = capsys.readouterr()
    assert not [line for line in (printed.out + printed.err).splitlines() if line.startswith("error")]
    assert "junk\\nerror: forged.png" in printed.out
    assert not [line for line in (out / "audit.md").read_text().splitlines() if line.startswith("error")]


def test_cuda_index_beyond_the_machines_devices_is_one_line(tmp_path, image_folder, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    experiment = write_config(tmp_path / "exp.yaml", image_folder, methods=["ce"], train=FAST,
                              run={"output": str(tmp_path / "out"), "device": "cuda:2"})
    assert main(["run", str(experiment), "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "run.device 'cuda:2'" in line and "2 CUDA device(s) (cuda:0..cuda:1)" in line, line
    assert not (tmp_path / "out").exists()
