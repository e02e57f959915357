"""Shared fixtures: tiny image folders made on the fly, and an isolated cache folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny test models run faster on one thread (no thread fan-out overhead on a shared 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SOLDERBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def isolated_registries(monkeypatch):
    """Snapshot the method and backbone registries and the loaded-plugin list; restore them afterwards."""
    from methods import backbones, plugins, registry

    saved = registry.snapshot(), backbones.snapshot()
    monkeypatch.setattr(plugins, "_LOADED_FILES", {})
    yield
    registry.restore(saved[0])
    backbones.restore(saved[1])


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


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "data", {"normal": 24, "defective": 12})


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
