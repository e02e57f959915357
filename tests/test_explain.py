"""Explain building blocks: CAM maps and target layers, noise and map stability, feature diversity, image choice."""

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from torch import nn

import methods
from benchmark.explain.build import choose_images, eval_subset
from benchmark.explain.cams import CAM_METHODS, cam_target, compute_cams, road_drop, target_layers
from benchmark.explain.defaults import CAM_NAMES
from benchmark.explain.diversity import diversity, pca_2d, penultimate_features
from benchmark.explain.noise import add_noise, map_stability
from methods.bilinear import BilinearPooling


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return methods.build_backbone("tiny_cnn", 2, 16).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Six 16x16 images in [0, 1] with structure (a bright square at a different place in each)."""
    gen = torch.Generator().manual_seed(1)
    x = 0.3 + 0.1 * torch.rand(6, 3, 16, 16, generator=gen)
    for i in range(6):
        x[i, :, i : i + 6, 2 * i % 10 : 2 * i % 10 + 6] = 0.9
    return x


def test_the_parser_offers_exactly_the_cam_methods_there_are():
    assert tuple(CAM_METHODS) == CAM_NAMES


@pytest.mark.parametrize("cam", ["gradcam", "gradcam++", "eigencam"])
def test_maps_have_the_image_size_and_lie_in_the_unit_interval(tiny, images, cam):
    target = cam_target(tiny, "tiny_cnn", 16)
    maps = compute_cams(tiny, target, cam, images, [0, 1, 0, 1, 0, 1], batch_size=4)
    assert maps.shape == (6, 16, 16)
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert (maps.reshape(6, -1).max(1) > maps.reshape(6, -1).min(1)).all(), "maps should not be flat at 4x4 features"


@pytest.mark.parametrize(
    ("name", "path", "rule"),
    [("tiny_cnn", "features", "table"), ("resnet18", "net.layer4", "table"), ("vit_tiny", "net.blocks.11.norm1", "vit")],
)
def test_target_layer_of_each_backbone_gives_a_gradcam_map(name, path, rule):
    size = methods.backbone_info(name)["min_image_size"]
    torch.manual_seed(0)
    model = methods.build_backbone(name, 2, size).eval()
    target = cam_target(model, name, size)
    assert (target.path, target.rule) == (path, rule)
    assert target.layer is model.get_submodule(path)
    assert target_layers(model, name, size) == [target.layer]
    seen = []
    handle = target.layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        features = model.forward_features(x)
    handle.remove()
    grid = target.reshape(seen[-1]) if target.reshape else seen[-1]
    assert grid.ndim == 4 and grid.shape[2:] == features.shape[2:]
    with GradCAM(model=model, target_layers=[target.layer], reshape_transform=target.reshape) as cam:
        maps = cam(input_tensor=x, targets=None)
    assert maps.shape == (1, size, size) and 0.0 <= maps.min() <= maps.max() <= 1.0


class _Plain(nn.Module):
    """An unregistered CNN: its target layer must come from the hook fallback."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.last = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6, 2)
        self.num_features = 6

    def forward_features(self, x):
        return self.act(self.last(self.stem(x)))

    def forward(self, x):
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))

    def get_classifier(self):
        return self.fc


def test_hook_fallback_finds_the_last_feature_map_and_wrapped_models_use_their_backbone(tiny):
    target = cam_target(_Plain(), "timm:not_in_the_table", 16)
    assert (target.path, target.rule) == ("act", "hook")
    wrapped = BilinearPooling(tiny, 2)
    assert cam_target(wrapped, "tiny_cnn", 16).path == "backbone.features"
    maps = compute_cams(wrapped, cam_target(wrapped, "tiny_cnn", 16), "gradcam", torch.rand(2, 3, 16, 16), [0, 1])
    assert maps.shape == (2, 16, 16)


@pytest.mark.parametrize("kind", ["gaussian", "salt_pepper"])
def test_zero_noise_leaves_images_and_maps_unchanged_so_stability_is_one(tiny, images, kind):
    noisy = add_noise(images, kind, 0.0, seed=3)
    assert torch.equal(noisy, images)
    target = cam_target(tiny, "tiny_cnn", 16)
    classes = [0, 1, 1, 0, 1, 0]
    clean = compute_cams(tiny, target, "gradcam", images, classes)
    same = compute_cams(tiny, target, "gradcam", noisy, classes)
    pearson, iou = map_stability(clean, same)
    assert pearson == pytest.approx(np.ones(6), abs=1e-12)
    assert (iou == 1.0).all()
    strong = compute_cams(tiny, target, "gradcam", add_noise(images, kind, 0.3, seed=3), classes)
    pearson, iou = map_stability(clean, strong)
    assert pearson.mean() < 0.999 and iou.mean() < 1.0


def test_noise_has_the_stated_size_and_is_reproducible():
    gray = torch.full((4, 3, 32, 32), 0.5)
    delta = (add_noise(gray, "gaussian", 0.05, seed=0) - gray).double().numpy()
    assert delta.std() == pytest.approx(0.05, rel=0.05) and abs(delta.mean()) < 0.005
    sp = add_noise(gray, "salt_pepper", 0.1, seed=0)
    changed = (sp != gray).any(dim=1)
    assert changed.double().mean().item() == pytest.approx(0.1, abs=0.02)
    values = sp.permute(0, 2, 3, 1)[changed]
    assert set(values.unique().tolist()) == {0.0, 1.0} and (values == values[:, :1]).all()
    assert torch.equal(add_noise(gray, "gaussian", 0.1, seed=5), add_noise(gray, "gaussian", 0.1, seed=5))
    assert not torch.equal(add_noise(gray, "gaussian", 0.1, seed=5), add_noise(gray, "gaussian", 0.1, seed=6))


def test_map_stability_matches_numpy_and_flat_maps_are_undefined():
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 10, 10)), rng.random((5, 10, 10))
    b[1] = a[1] * 2 + 1
    pearson, iou = map_stability(a, b)
    for i in range(5):
        assert pearson[i] == pytest.approx(np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1], abs=1e-12)
        top_a = set(np.argsort(a[i].ravel())[-20:])
        top_b = set(np.argsort(b[i].ravel())[-20:])
        assert iou[i] == pytest.approx(len(top_a & top_b) / len(top_a | top_b), abs=1e-12)
    assert pearson[1] == pytest.approx(1.0) and iou[1] == 1.0
    b[2] = 0.0
    pearson, iou = map_stability(a, b)
    assert np.isnan(pearson[2]) and np.isnan(iou[2]) and not np.isnan(iou[[0, 1, 3, 4]]).any()


def _features_with_covariance(eigenvalues: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n samples whose sample covariance is exactly diag(eigenvalues)."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(n, len(eigenvalues)))
    q, _ = np.linalg.qr(raw - raw.mean(axis=0))
    return np.sqrt(n - 1) * q * np.sqrt(eigenvalues) + rng.normal(size=len(eigenvalues))


def test_diversity_matches_an_independent_numpy_computation():
    eigenvalues = np.array([5.0, 2.0, 1.0, 0.5, 0.25, 0.25])
    features = _features_with_covariance(eigenvalues, 50, seed=0)
    assert np.cov(features, rowvar=False) == pytest.approx(np.diag(eigenvalues), abs=1e-9)
    p = eigenvalues / eigenvalues.sum()
    entropy = -(p * np.log(p)).sum()
    got = diversity(features)
    assert got["entropy"] == pytest.approx(entropy, rel=1e-9)
    assert got["effective_rank"] == pytest.approx(np.exp(entropy), rel=1e-9)
    assert got["effective_rank_ratio"] == pytest.approx(np.exp(entropy) / 6, rel=1e-9)
    assert got["top1_variance"] == pytest.approx(5.0 / 9.0, rel=1e-9)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(6, 6)))
    assert diversity(features @ rotation)["entropy"] == pytest.approx(entropy, rel=1e-9)
    isotropic = diversity(_features_with_covariance(np.ones(4), 30, seed=2))
    assert isotropic["effective_rank"] == pytest.approx(4.0, rel=1e-9)
    assert diversity(np.ones((10, 3)))["effective_rank"] == 0.0


def test_penultimate_features_are_the_pooled_last_feature_map(tiny, images):
    feats = penultimate_features(tiny, images, batch_size=4)
    with torch.no_grad():
        expected = tiny.forward_features(images).double().mean(dim=(2, 3)).numpy()
    assert feats.shape == (6, 32) and feats == pytest.approx(expected, abs=1e-6)
    xy = pca_2d(feats)
    assert xy.shape == (6, 2) and xy[:, 0].var() >= xy[:, 1].var()


def test_road_drop_is_finite_for_maps_and_nan_for_flat_ones(tiny, images):
    target = cam_target(tiny, "tiny_cnn", 16)
    maps = compute_cams(tiny, target, "gradcam", images, [0] * 6)
    maps[0] = 0.0
    drop = road_drop(tiny, images, maps, [0] * 6, seed=0)
    assert np.isnan(drop[0]) and np.isfinite(drop[1:]).all() and (np.abs(drop[1:]) <= 1).all()
    assert drop[1:] == pytest.approx(road_drop(tiny, images, maps, [0] * 6, seed=0)[1:], abs=1e-12)


def test_image_choice_is_deterministic_and_covers_classes_and_mistakes():
    labels = np.array([0] * 10 + [1] * 6)
    wrong = np.zeros(16, dtype=bool)
    wrong[[2, 12]] = True
    chosen = choose_images(labels, wrong, 6, seed=0)
    assert len(chosen) == 6 and len(set(chosen)) == 6
    assert {(labels[i], wrong[i]) for i in chosen} == {(0, False), (1, False), (0, True), (1, True)}
    assert list(chosen) == list(choose_images(labels, wrong, 6, seed=0))
    assert len(choose_images(labels, wrong, 50, seed=0)) == 16
    assert list(eval_subset(16, 0, 0)) == list(range(16)) and len(set(eval_subset(16, 5, 0))) == 5
