"""Helpers the tests share: tiny image folders and experiment files made on the fly, a tiny training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_image_folder(root: Path, counts: dict[str, int], size: int = 16, seed: int = 0) -> Path:
    """class folders of random PNGs whose mean brightness depends on the class (learnable, not trivial)."""
    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            base = 60 + 80 * k
            pixels = np.clip(rng.normal(base, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name} ({i}).png")
    return root


def write_config(path: Path, data_root: Path | str, **sections) -> Path:
    """An experiment YAML with a tiny model and few epochs; sections override top-level keys."""
    import yaml

    cfg = {
        "name": "t",
        "data": {"root": str(data_root), "image_size": 16, "positive": "defective"},
        "protocol": {"folds": 3, "val_fraction": 0.25, "seed": 1},
        "train": {"epochs": 2, "batch_size": 8, "optimizer": {"name": "adam", "lr": 1e-2}, "threads": 1},
        "methods": ["ce", {"name": "alpha_js", "alpha": [0.3, 0.7]}],
        "backbones": ["tiny_cnn"],
        "run": {"output": str(path.parent / "out"), "device": "cpu"},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def augmented_experiment(root: Path) -> tuple[Path, Path]:
    """(root, config path) of a two-class 16 px experiment with every augmentation on: for comparing train options."""
    folder = make_image_folder(root / "data", {"normal": 24, "defective": 12})
    path = write_config(root / "exp.yaml", folder, data={"root": str(folder), "image_size": 16, "positive": "defective",
                                                         "augment": ["hflip", "vflip", "rot90"]})
    return root, path


def train_tiny(experiment: tuple[Path, Path], overrides: list[str], name: str, device: str = "cpu"):
    """Train fold 0 of `augmented_experiment` with tiny_cnn and method ce under `overrides`; the RunResult."""
    import torch

    from benchmark.config import load_config
    from benchmark.dataset import prepare
    from benchmark.plan import RunSpec
    from benchmark.rundir import RunDir
    from benchmark.train import train_run

    root, path = experiment
    cfg = load_config(path, overrides)
    spec = RunSpec("r", "t", "ce", {}, "tiny_cnn", None, 0, 0, 0)
    return train_run(spec, cfg, prepare(cfg), RunDir(root / "runs" / name), torch.device(device), show_progress=False)
