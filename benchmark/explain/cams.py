"""Class activation maps from the grad-cam package: the target layer of each backbone, and maps in [0, 1]."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.metrics.road import ROADMostRelevantFirst
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from torch import Tensor, nn

from benchmark.errors import UserError
from methods.backbones import backbone_spec

CAM_METHODS: dict[str, type] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
    "eigencam": EigenCAM,
    "scorecam": ScoreCAM,
}
CAM_TITLES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "xgradcam": "XGrad-CAM",
    "layercam": "LayerCAM",
    "hirescam": "HiResCAM",
    "eigencam": "EigenCAM",
    "scorecam": "Score-CAM",
}

@dataclass(frozen=True)
class CamTarget:
    """Where the maps are taken: the layer, its dotted path in the model, the rule that chose it, a reshape."""

    layer: nn.Module
    path: str
    rule: str
    reshape: Callable[[Tensor], Tensor] | None = None


def backbone_of(model: nn.Module) -> tuple[nn.Module, str]:
    """The backbone inside a model a method wrapped (e.g. bilinear pooling) and its path prefix."""
    inner = getattr(model, "backbone", None)
    if isinstance(inner, nn.Module) and hasattr(inner, "forward_features"):
        return inner, "backbone."
    return model, ""


class TokensToMap:
    """Reshape transformer tokens [N, prefix + H·W, C] (or NHWC maps) to [N, C, H, W] for the CAM methods."""

    def __init__(self, prefix_tokens: int = 0, grid: tuple[int, int] | None = None, channels_last: bool = False):
        self.prefix_tokens = prefix_tokens
        self.grid = grid
        self.channels_last = channels_last

    def __call__(self, x: Tensor) -> Tensor:
        if self.channels_last:
            return x.permute(0, 3, 1, 2)
        tokens = x[:, self.prefix_tokens :, :]
        n = tokens.shape[1]
        h, w = self.grid if self.grid and self.grid[0] * self.grid[1] == n else (math.isqrt(n), n // max(math.isqrt(n), 1))
        if h * w != n:
            raise ValueError(f"cannot lay out {n} tokens on a square grid")
        return tokens.reshape(x.shape[0], h, w, x.shape[2]).permute(0, 3, 1, 2)


def _transformer_target(backbone: nn.Module, prefix: str) -> CamTarget | None:
    """ViT-like (class token: last block's norm1) and Swin-like (NHWC stages: the last stage) timm transformers."""
    net = getattr(backbone, "net", backbone)
    net_path = prefix + ("net." if net is not backbone else "")
    blocks = getattr(net, "blocks", None)
    if hasattr(net, "num_prefix_tokens") and isinstance(blocks, nn.Sequential) and len(blocks):
        grid = getattr(getattr(net, "patch_embed", None), "grid_size", None)
        last = len(blocks) - 1
        reshape = TokensToMap(int(net.num_prefix_tokens), tuple(grid) if grid else None)
        return CamTarget(blocks[last].norm1, f"{net_path}blocks.{last}.norm1", "vit", reshape)
    layers = getattr(net, "layers", None)
    if getattr(net, "output_fmt", "NCHW") == "NHWC" and isinstance(layers, nn.Sequential) and len(layers):
        last = len(layers) - 1
        return CamTarget(layers[last], f"{net_path}layers.{last}", "nhwc", TokensToMap(channels_last=True))
    return None


def _hooked_target(backbone: nn.Module, prefix: str, image_size: int) -> CamTarget:
    """The last module to finish, within `forward_features`, whose output is the feature map (4-D, its shape)."""
    seen: list[tuple[str, tuple[int, ...]]] = []

    def recorder(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
            if isinstance(output, Tensor):
                seen.append((name, tuple(output.shape)))

        return hook

    handles = [module.register_forward_hook(recorder(name)) for name, module in backbone.named_modules() if name]
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, 3, image_size, image_size, device=next(backbone.parameters()).device)
            wanted = tuple(backbone.forward_features(x).shape)
    finally:
        for handle in handles:
            handle.remove()
        backbone.train(was_training)
    maps = [name for name, shape in seen if shape == wanted and len(shape) == 4]
    if not maps:
        raise UserError(f"no layer of {type(backbone).__name__} outputs its {wanted} feature map; cannot compute CAMs")
    return CamTarget(backbone.get_submodule(maps[-1]), prefix + maps[-1], "hook")


def cam_target(model: nn.Module, backbone_name: str, image_size: int = 64) -> CamTarget:
    """The layer whose activations and gradients make the maps: the registered backbone's `cam_layer` (rule
    "table"), else the transformer rule, else the hook fallback (`timm:` names, backbones registered without one)."""
    backbone, prefix = backbone_of(model)
    spec = backbone_spec(backbone_name)
    if spec is not None and spec.cam_layer is not None:
        path = prefix + spec.cam_layer
        return CamTarget(model.get_submodule(path), path, "table")
    found = _transformer_target(backbone, prefix)
    return found if found is not None else _hooked_target(backbone, prefix, image_size)


def target_layers(model: nn.Module, backbone_name: str, image_size: int = 64) -> list[nn.Module]:
    """The target layers in the form grad-cam expects (a one-element list)."""
    return [cam_target(model, backbone_name, image_size).layer]


def check_cam_methods(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in CAM_METHODS]
    if unknown or not names:
        raise UserError(f"--cam {' '.join(unknown) or '(none)'}: unknown CAM method; allowed: {', '.join(CAM_METHODS)}")
    return list(dict.fromkeys(names))


def compute_cams(model: nn.Module, target: CamTarget, method: str, inputs: Tensor, classes: Sequence[int],
                 batch_size: int = 32) -> np.ndarray:
    """Maps [N, H, W] (the input's size, each scaled to [0, 1] by grad-cam) for class `classes[i]` of image i."""
    maps = []
    with CAM_METHODS[method](model=model, target_layers=[target.layer], reshape_transform=target.reshape) as cam:
        if method == "scorecam":
            cam.batch_size = batch_size
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size]
            targets = [ClassifierOutputTarget(int(c)) for c in classes[start : start + batch_size]]
            maps.append(cam(input_tensor=batch, targets=targets))
    model.zero_grad(set_to_none=True)
    return np.clip(np.concatenate(maps).astype(np.float32), 0.0, 1.0)


def road_drop(model: nn.Module, inputs: Tensor, maps: np.ndarray, classes: Sequence[int], percentile: int = 80,
              batch_size: int = 32, seed: int = 0) -> np.ndarray:
    """ROAD (Rong et al. 2022): drop of the class's softmax probability when the map's top pixels are removed.

    The pixels above the map's `percentile` are imputed from their neighbours (grad-cam's ROADMostRelevantFirst);
    a larger drop means the map points at evidence the model uses. NaN for flat maps (nothing to remove); the
    imputer's noise is drawn from `seed`.
    """
    metric = ROADMostRelevantFirst(percentile=percentile)
    flat = maps.reshape(len(maps), -1)
    valid = np.flatnonzero(flat.max(axis=1) > flat.min(axis=1))
    drops = np.full(len(maps), np.nan)
    classes = np.asarray(classes)
    model.eval()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*__array_wrap__", category=DeprecationWarning)
        torch.manual_seed(seed)
        for start in range(0, len(valid), batch_size):
            idx = valid[start : start + batch_size]
            targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes[idx]]
            change = metric(inputs[torch.from_numpy(idx)], maps[idx], targets, model)
            drops[idx] = -np.asarray(change, dtype=np.float64).reshape(-1)
    return drops
