"""Bilinear pooling (B-CNN): a model-changing method that replaces the backbone's head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import Method, require
from methods.registry import register_method


class BilinearPooling(nn.Module):
    """Backbone feature map → outer-product (bilinear) pooling → signed sqrt → L2 norm → new linear head.

    The backbone must follow the contract of `methods.backbones` (`forward_features`, `num_features`); its own
    classifier head stays in the module but is not used. Pooling runs in float32 (also under autocast).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, reduce_dim: int | None = None):
        super().__init__()
        self.backbone = backbone
        channels = int(backbone.num_features)
        if reduce_dim is None:
            self.reduce: nn.Module = nn.Identity()
        else:
            self.reduce = nn.Sequential(
                nn.Conv2d(channels, reduce_dim, 1, bias=False), nn.BatchNorm2d(reduce_dim), nn.ReLU(inplace=True)
            )
            channels = reduce_dim
        self.num_features = channels * channels
        self.head = nn.Linear(self.num_features, num_classes)

    def pool(self, x: Tensor) -> Tensor:
        """The normalised bilinear descriptor [N, C·C] of images x."""
        features = self.reduce(self.backbone.forward_features(x))
        if features.ndim != 4:
            raise ValueError(f"bilinear needs a [N, C, H, W] feature map, got shape {tuple(features.shape)}")
        n, c, h, w = features.shape
        flat = features.float().reshape(n, c, h * w)
        gram = torch.bmm(flat, flat.transpose(1, 2)).reshape(n, c * c) / (h * w)
        signed_sqrt = gram.sign() * gram.abs().clamp_min(1e-12).sqrt()
        return F.normalize(signed_sqrt, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool(x)
        return self.head(pooled.to(self.head.weight.dtype))


@register_method("bilinear")
class Bilinear(Method):
    """Bilinear pooling of the backbone's feature map with signed sqrt and L2 normalisation, new linear head; CE loss.

    `reduce_dim` optionally adds a 1x1 conv (+BN, ReLU) to that many channels first, to keep C·C small for wide
    backbones (e.g. resnet50's 2048 channels).
    """

    citation = "Lin, RoyChowdhury and Maji, Bilinear CNN Models for Fine-grained Visual Recognition, ICCV 2015"

    def __init__(self, reduce_dim: int | None = None):
        super().__init__()
        require(reduce_dim is None or reduce_dim >= 1, "bilinear", f"reduce_dim must be >= 1, got {reduce_dim}")
        self.reduce_dim = reduce_dim

    def wrap_model(self, model: nn.Module, num_classes: int) -> nn.Module:
        return BilinearPooling(model, num_classes, self.reduce_dim)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets)
