"""Shared fixtures: tiny image folders made on the fly, and an isolated cache folder (helpers: tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark import numerics
from tests.helpers import make_image_folder

# The test process trains in-process runs with the default (portable) numerics: its caps must be in place before the
# first torch kernel runs, as `python -m benchmark run` puts them (an executor would otherwise spawn a worker per sweep).
numerics.prepare_environment("portable", 1)


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


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "data", {"normal": 24, "defective": 12})
