"""Plugins: the README example (section "Adding a method"), module names, re-loading, and failures."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

import methods
from benchmark.errors import UserError

DOCS = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(autouse=True)
def _isolated(isolated_registries):
    """Plugins registered by these tests do not leak into others."""


def readme_example() -> str:
    section = DOCS.read_text().split("### Adding a method", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_is_short_loads_as_plugin_and_builds(tmp_path):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 15
    (tmp_path / "my_methods.py").write_text(code)
    methods.load_plugins(["my_methods.py"], tmp_path)
    methods.load_plugins(["my_methods.py"], tmp_path)  # the same file again: no duplicate error
    assert "logit_penalty" in methods.list_methods()
    assert methods.method_info("logit_penalty")["params"] == {"weight": ("float", 0.01)}
    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    loss = methods.build("logit_penalty", weight=0.5)(torch.from_numpy(logits), torch.from_numpy(targets))
    expected = -log_softmax(logits, axis=1)[np.arange(6), targets].mean() + 0.5 * (logits**2).sum(1).mean()
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(UserError, match="weight must be >= 0"):
        methods.build("logit_penalty", weight=-1)


def test_plugin_by_module_name(tmp_path, monkeypatch):
    (tmp_path / "plugin_mod_for_test.py").write_text(readme_example().replace("logit_penalty", "by_module"))
    monkeypatch.syspath_prepend(str(tmp_path))
    methods.load_plugins(["plugin_mod_for_test"])
    methods.load_plugins(["plugin_mod_for_test"])
    assert "by_module" in methods.list_methods()
    sys.modules.pop("plugin_mod_for_test")


def test_plugin_registering_a_backbone(tmp_path):
    (tmp_path / "bb.py").write_text(
        "from methods import register_backbone\n"
        "from methods.adapters import TinyCNN\n"
        "@register_backbone('tiny_cnn_copy', min_image_size=8)\n"
        "def tiny_cnn_copy(num_classes, image_size):\n"
        "    '''A copy of tiny_cnn.'''\n"
        "    return TinyCNN(num_classes)\n"
    )
    methods.load_plugins([str(tmp_path / "bb.py")])
    assert methods.backbone_info("tiny_cnn_copy")["description"] == "A copy of tiny_cnn."
    assert methods.build_backbone("tiny_cnn_copy", 3, 8)(torch.randn(2, 3, 8, 8)).shape == (2, 3)


def test_failing_plugin_names_itself_and_registers_nothing(tmp_path):
    (tmp_path / "broken.py").write_text(
        readme_example().replace("logit_penalty", "half_done") + "\nraise RuntimeError('boom\\nsecond line')\n"
    )
    with pytest.raises(UserError, match=r"plugin broken.py failed to load: RuntimeError: boom$"):
        methods.load_plugins(["broken.py"], tmp_path)
    assert "half_done" not in methods.list_methods()


@pytest.mark.parametrize("spec, pattern", [
    ("no_such_plugin_module", r"plugin no_such_plugin_module failed to load: ModuleNotFoundError"),
    ("missing.py", r"plugin missing.py: file .*missing.py does not exist"),
])
def test_missing_plugins(spec, pattern, tmp_path):
    with pytest.raises(UserError, match=pattern):
        methods.load_plugins([spec], tmp_path)


def test_plugin_reusing_a_builtin_name_is_refused(tmp_path):
    (tmp_path / "dup.py").write_text(readme_example().replace('"logit_penalty")\nclass', '"ce")\nclass'))
    with pytest.raises(UserError, match="plugin dup.py failed to load: ValueError: method 'ce' is already registered"):
        methods.load_plugins(["dup.py"], tmp_path)
    assert methods.method_info("ce")["params"] == {}


def test_methods_md_search_space_example_registers_its_space(tmp_path):
    """docs/methods.md's plugin example with `search_space` loads, and `list methods` shows the space it declares."""
    section = (DOCS.parent / "docs" / "methods.md").read_text().split("### Declaring a tuning space", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "my_methods.py").write_text(code)
    methods.load_plugins(["my_methods.py"], tmp_path)
    space = methods.method_info("logit_penalty")["space"]
    assert list(space) == ["weight"] and space["weight"].describe() == "log-uniform(0.0001, 0.1)"
    assert "tunes: weight ~ log-uniform(0.0001, 0.1)" in section
