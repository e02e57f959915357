"""Thin modules that give networks the backbone contract (`forward_features`, `num_features`, `get_classifier`)."""

from __future__ import annotations

from torch import Tensor, nn


class TorchvisionBackbone(nn.Module):
    """A torchvision classifier `net` plus `forward_features`: its named children run in order up to and including
    `feature_layer` (the last conv stage, e.g. "layer4" of a ResNet)."""

    def __init__(self, net: nn.Module, feature_layer: str, classifier: str, num_features: int):
        super().__init__()
        children = [name for name, _ in net.named_children()]
        if feature_layer not in children:
            raise ValueError(f"{type(net).__name__} has no child module '{feature_layer}'; it has {children}")
        self.net = net
        self.feature_layers = children[: children.index(feature_layer) + 1]
        self.classifier = classifier
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward_features(self, x: Tensor) -> Tensor:
        for name in self.feature_layers:
            x = self.net.get_submodule(name)(x)
        return x

    def get_classifier(self) -> nn.Module:
        return self.net.get_submodule(self.classifier)


def needs_token_adapter(net: nn.Module) -> bool:
    """Whether a timm model's `forward_features` gives tokens or channels-last maps rather than [N, C, H, W]."""
    token_model = hasattr(net, "num_prefix_tokens") or getattr(net, "output_fmt", "NCHW") != "NCHW"
    return token_model and hasattr(net, "forward_intermediates")


class TimmTokenBackbone(nn.Module):
    """A timm transformer `net` whose `forward_features` is its last block's output as an [N, C, H, W] token grid.

    Uses timm's `forward_intermediates(..., norm=True, output_fmt="NCHW")`: prefix (class/distillation) tokens are
    dropped and the final norm is applied, so the map matches what the model's own head pools.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.num_features = int(net.num_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.net.forward_intermediates(x, indices=1, norm=True, output_fmt="NCHW", intermediates_only=True)[-1]

    def get_classifier(self) -> nn.Module:
        return self.net.get_classifier()


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyCNN(nn.Module):
    """3x3 conv-BN-ReLU blocks of the given widths with a 2x2 max-pool between them, global average pool, linear head.

    The default (8, 16, 32) is `tiny_cnn`; `small_cnn` is (16, 32, 64, 128).
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (8, 16, 32)):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip((3, *widths[:-1]), widths)):
            layers += ([nn.MaxPool2d(2)] if i else []) + [_conv_bn_relu(cin, cout)]
        self.features = nn.Sequential(*layers)
        self.num_features = widths[-1]
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x).mean(dim=(2, 3)))

    def get_classifier(self) -> nn.Module:
        return self.head
