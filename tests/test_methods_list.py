"""`python -m benchmark list [methods|backbones] [PATTERN]`."""

from __future__ import annotations

import pytest

from benchmark.cli import main


@pytest.fixture(autouse=True)
def _isolated(isolated_registries):
    """Plugins registered by these tests do not leak into others."""


def test_lists_both_by_default(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "alpha_js(alpha: float = 0.5, beta: float = 1.0, variant: 'correct' | 'reference' = 'correct')" in out
    assert "cite: Ulger et al." in out
    assert "confidence_penalty(beta: float = 0.1, threshold: float | None = None)" in out
    assert "vit_tiny  (min image size 12)" in out
    assert "notes: timm vit_tiny_patch16_224 with patch_size=12" in out
    assert out.index("methods:") < out.index("backbones")


def test_methods_with_pattern(capsys):
    assert main(["list", "methods", "*js"]) == 0
    out = capsys.readouterr().out
    assert "alpha_js(" in out
    assert "focal" not in out and "backbones" not in out


def test_backbones_with_pattern(capsys):
    assert main(["list", "backbones", "res*"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "resnet50" in out and "He et al." in out
    assert "vgg16" not in out and "methods:" not in out


def test_no_match_says_so_and_suggests_names(capsys):
    assert main(["list", "methods", "zzz*"]) == 0
    assert "(no methods match 'zzz*'; registered: " in capsys.readouterr().out
    assert main(["list", "methods", "alpa"]) == 0
    assert "(no methods match 'alpa'; did you mean alpha_js?)" in capsys.readouterr().out


def test_unknown_kind_is_an_argparse_choices_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["list", "widgets"])
    assert exc.value.code == 2
    assert "invalid choice: 'widgets'" in capsys.readouterr().err


def test_plugin_methods_are_listed(tmp_path, monkeypatch, capsys):
    (tmp_path / "extra.py").write_text(
        "import torch.nn.functional as F\n"
        "from methods import Method, register_method\n"
        "@register_method('extra_listed')\n"
        "class Extra(Method):\n"
        "    '''An extra objective.'''\n"
        "    citation = 'nobody 2024'\n"
        "    def __init__(self, scale: float = 2.0):\n"
        "        super().__init__()\n"
        "    def forward(self, logits, targets):\n"
        "        return F.cross_entropy(logits, targets)\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["list", "methods", "extra*", "--plugin", "extra.py"]) == 0
    out = capsys.readouterr().out
    assert "extra_listed(scale: float = 2.0)" in out and "An extra objective." in out and "nobody 2024" in out


def test_broken_plugin_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "bad.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.chdir(tmp_path)
    assert main(["list", "--plugin", "bad.py"]) == 2
    assert "plugin bad.py failed to load: ModuleNotFoundError" in capsys.readouterr().err
