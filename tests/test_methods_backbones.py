"""Backbones: the contract (forward, forward_features, num_features), `timm:` names, local weights, bilinear pooling."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision

import methods
from benchmark.errors import UserError

HEAVY = {"vgg16", "swin_tiny", "resnet50"}  # marked slow
BUILTIN = methods.list_backbones()  # from the registry: a new backbone is tested without editing this file


def cases() -> list:
    """Per backbone: 84 px with K=2 and its minimum image size with K=5 (heavy ones marked slow)."""
    out = []
    for name in BUILTIN:
        marks = [pytest.mark.slow] if name in HEAVY else []
        out.append(pytest.param(name, 84, 2, marks=marks, id=f"{name}-84px-K2"))
        out.append(pytest.param(name, None, 5, marks=marks, id=f"{name}-min-K5"))
    return out


def test_registered_backbones_are_listed():
    assert HEAVY <= set(BUILTIN) and {"resnet18", "small_cnn", "tiny_cnn", "vit_tiny"} <= set(BUILTIN)
    assert all(methods.backbone_info(name)["description"] for name in BUILTIN)
    assert methods.list_backbones("res*") == ["resnet18", "resnet50"]
    info = methods.backbone_info("vit_tiny")
    assert set(info) == {"name", "description", "citation", "min_image_size", "notes"}
    assert info["min_image_size"] == 12 and "patch_size=12" in info["notes"]


@pytest.mark.parametrize("name, size, k", cases())
def test_forward_backward_and_feature_contract(name, size, k):
    torch.manual_seed(0)
    size = size or methods.backbone_info(name)["min_image_size"]
    model = methods.build_backbone(name, k, size)
    x = torch.randn(2, 3, size, size)
    logits = model(x)
    assert logits.shape == (2, k)
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        features = model.forward_features(x)
    assert features.ndim == 4 and features.shape[:2] == (2, model.num_features)
    assert isinstance(model.num_features, int)
    assert model.get_classifier().out_features == k


def test_image_below_minimum_and_bad_sizes_are_refused():
    with pytest.raises(UserError, match="vgg16.*image_size >= 32, got 16"):
        methods.build_backbone("vgg16", 2, 16)
    with pytest.raises(UserError, match="num_classes must be an integer >= 2"):
        methods.build_backbone("tiny_cnn", 1, 16)


def test_unknown_backbone_suggests_names():
    with pytest.raises(UserError, match="unknown backbone 'resnet19'.*resnet18.*timm:"):
        methods.build_backbone("resnet19", 2, 32)
    with pytest.raises(UserError, match="unknown timm architecture 'resnet10x'.*timm:resnet10t"):
        methods.build_backbone("timm:resnet10x", 2, 32)


def test_any_timm_architecture_by_prefix():
    cnn = methods.build_backbone("timm:resnet10t", 3, 32)
    assert cnn(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert cnn.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, cnn.num_features, 1, 1)
    vit = methods.build_backbone("timm:deit_tiny_distilled_patch16_224", 4, 32)  # fixed input size → img_size=32
    x = torch.randn(2, 3, 32, 32)
    assert vit(x).shape == (2, 4)
    assert vit.forward_features(x).shape == (2, 192, 2, 2)  # class + distillation tokens dropped
    assert methods.backbone_info("timm:resnet10t")["min_image_size"] is None


# --- weights ------------------------------------------------------------------------------------------------------


def test_weights_from_our_own_backbone_remake_the_head(tmp_path):
    source = methods.build_backbone("tiny_cnn", 5, 16)
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    same = methods.build_backbone("tiny_cnn", 5, 16, weights=path)
    other = methods.build_backbone("tiny_cnn", 3, 16, weights=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(same.state_dict()[key], value)
        if not key.startswith("head."):
            assert torch.equal(other.state_dict()[key], value)
    assert other.head.weight.shape == (3, 32)


def test_torchvision_state_dict_loads_into_wrapper(tmp_path):
    source = torchvision.models.resnet18(weights=None, num_classes=7)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = methods.build_backbone("resnet18", 2, 32, weights=path)
    assert torch.equal(model.net.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert torch.equal(model.net.bn1.running_var, source.bn1.running_var)
    assert model.get_classifier().weight.shape == (2, 512)


def test_timm_weights_load_and_vit_is_resampled(tmp_path):
    source = timm.create_model("resnet10t", num_classes=4)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "r10t.pth")
    model = methods.build_backbone("timm:resnet10t", 3, 32, weights=tmp_path / "r10t.pth")
    assert torch.equal(model.layer4[0].conv1.weight, source.layer4[0].conv1.weight)

    vit16 = timm.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32)  # patch 16, 2x2 grid
    torch.save(vit16.state_dict(), tmp_path / "vit16.pth")
    vit = methods.build_backbone("vit_tiny", 2, 36, weights=tmp_path / "vit16.pth")  # patch 12, 3x3 grid
    assert torch.equal(vit.net.blocks[3].attn.qkv.weight, vit16.blocks[3].attn.qkv.weight)
    assert vit.net.pos_embed.shape == (1, 1 + 9, 192)
    assert vit(torch.randn(2, 3, 36, 36)).shape == (2, 2)


def test_bad_weight_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="missing.pt.*does not exist"):
        methods.build_backbone("tiny_cnn", 2, 16, weights=tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(UserError, match="garbage.pt could not be read"):
        methods.build_backbone("tiny_cnn", 2, 16, weights=garbage)
    torch.save(methods.build_backbone("tiny_cnn", 2, 16).state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(UserError, match="tiny.pt does not match backbone 'resnet18': .*missing keys"):
        methods.build_backbone("resnet18", 2, 32, weights=tmp_path / "tiny.pt")
    with pytest.raises(UserError, match="tiny.pt does not match backbone 'timm:resnet10t'"):
        methods.build_backbone("timm:resnet10t", 2, 32, weights=tmp_path / "tiny.pt")


# --- bilinear pooling -----------------------------------------------------------------------------------------------


def test_bilinear_pooling_matches_numpy():
    torch.manual_seed(0)
    backbone = methods.build_backbone("tiny_cnn", 3, 16).double().eval()
    model = methods.build("bilinear").wrap_model(backbone, 3).double().eval()
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        logits = model(x).numpy()
        fmap = backbone.forward_features(x).numpy()
    n, c, h, w = fmap.shape
    flat = fmap.reshape(n, c, h * w)
    gram = np.einsum("nci,ndi->ncd", flat, flat).reshape(n, c * c) / (h * w)
    signed = np.sign(gram) * np.sqrt(np.abs(gram))
    normalised = signed / np.linalg.norm(signed, axis=1, keepdims=True)
    expected = normalised @ model.head.weight.detach().numpy().T + model.head.bias.detach().numpy()
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["vit_tiny", "seresnet18"])
def test_bilinear_wraps_other_backbones_and_reduces_dim(name):
    model = methods.build("bilinear", reduce_dim=8).wrap_model(methods.build_backbone(name, 5, 36), 5)
    logits = model(torch.randn(2, 3, 36, 36))
    assert logits.shape == (2, 5) and model.head.in_features == 64
    logits.sum().backward()
    assert torch.isfinite(model.head.weight.grad).all()


def test_nothing_is_downloaded(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a backbone tried to open a network connection")

    monkeypatch.setattr("socket.socket.connect", no_network)
    monkeypatch.setattr("torch.hub.download_url_to_file", no_network)
    torch.save(timm.create_model("resnet10t", num_classes=2).state_dict(), tmp_path / "w.pth")
    for name in ("timm:resnet10t", "seresnet18", "vit_tiny", "resnet18"):
        methods.build_backbone(name, 2, 32)
    methods.build_backbone("timm:resnet10t", 2, 32, weights=tmp_path / "w.pth")
