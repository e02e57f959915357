"""`python -m benchmark data synthetic|montage` through the CLI entry point, and the montage layout."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.data import montage
from benchmark.data.synthetic import CLASSES, class_counts


def test_data_synthetic_writes_the_dataset_and_prints_counts(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synthetic", "--out", str(out), "--n", "15", "--size", "16", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    for cls, count in class_counts(15, 0.8).items():
        assert len(list((out / cls).glob("*.png"))) == count
        assert any(line.split() == [cls, str(count)] for line in printed.splitlines())
    assert "images/s" in printed


@pytest.mark.parametrize(
    "argv",
    [
        ["--n", "3"],
        ["--size", "8"],
        ["--normal-fraction", "1.5"],
        ["--workers", "0"],
    ],
)
def test_data_synthetic_bad_values_exit_2(tmp_path, argv, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synthetic", "--out", str(out), *argv]) == 2
    assert "error:" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["data"],
        ["data", "synthetic"],
        ["data", "synthetic", "--out", "x", "--n", "many"],
        ["data", "shuffle"],
    ],
)
def test_data_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def _solid_real_dataset(root, colours):
    """A fake 'real' dataset: per class, solid-colour crops of different sizes and formats."""
    for k, cls in enumerate(CLASSES):
        folder = root / cls
        folder.mkdir(parents=True)
        for i in range(3):
            size = (20 + 7 * i, 30 + 5 * k)
            suffix = ".tiff" if cls == "normal" else ".png"
            Image.new("RGB", size, colours[k]).save(folder / f"{cls} ({i}){suffix}")
    return root


def test_data_montage_places_real_and_synthetic_rows(tmp_path):
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]
    real = _solid_real_dataset(tmp_path / "real", colours)
    syn = tmp_path / "syn"
    assert main(["data", "synthetic", "--out", str(syn), "--n", "25", "--size", "16",
                 "--normal-fraction", "0.5"]) == 0
    out = tmp_path / "m.png"
    argv = ["data", "montage", "--real", str(real), "--synthetic", str(syn), "--per-class", "2", "--tile", "20",
            "--out", str(out)]
    assert main(argv) == 0
    sheet = np.asarray(Image.open(out).convert("RGB"))
    tile, gap, rows = 20, montage.GAP, 2 * len(CLASSES)
    assert sheet.shape == (montage.HEADER + rows * (tile + 2) + (len(CLASSES) - 1) * gap,
                           montage.LABEL_WIDTH + 2 * (tile + 2), 3)
    for k, colour in enumerate(colours):
        top = montage.HEADER + 2 * k * (tile + 2) + k * gap
        real_tile = sheet[top:top + tile, montage.LABEL_WIDTH:montage.LABEL_WIDTH + tile]
        assert np.abs(real_tile.astype(int) - colour).max() <= 1
        synthetic_tile = sheet[top + tile + 2:top + 2 * tile + 2, montage.LABEL_WIDTH:montage.LABEL_WIDTH + tile]
        assert synthetic_tile.std() > 1.0


def test_data_montage_generates_synthetic_when_not_given(tmp_path):
    out = tmp_path / "m.png"
    real = _solid_real_dataset(tmp_path / "real", [(90, 90, 90)] * len(CLASSES))
    assert main(["data", "montage", "--real", str(real), "--per-class", "1", "--tile", "16", "--out", str(out)]) == 0
    with Image.open(out) as img:
        assert img.width == montage.LABEL_WIDTH + 18


def test_data_montage_bad_paths_exit_2(tmp_path):
    out = tmp_path / "m.png"
    assert main(["data", "montage", "--real", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["data", "montage", "--synthetic", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["data", "montage", "--out", str(tmp_path / "m.jpg")]) == 2
    assert main(["data", "montage", "--per-class", "0", "--out", str(out)]) == 2
    assert main(["data", "montage", "--tile", "4", "--out", str(out)]) == 2
    assert not out.exists()


def test_data_synthetic_on_a_full_disk_is_one_line_exit_1_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from benchmark.data import synthetic

    def full(array, path):
        path.write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(synthetic, "_save_png", full)
    assert main(["data", "synthetic", "--out", str(tmp_path / "syn"), "--n", "10", "--size", "16"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert ".png: No space left on device (ENOSPC)" in errors[0]
    assert list(tmp_path.iterdir()) == []
