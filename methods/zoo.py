"""The registered backbones: the paper's four torchvision CNNs, timm attention CNNs and transformers, a tiny CNN."""

from __future__ import annotations

from torch import nn
from torchvision import models as tv

from methods.adapters import TinyCNN, TorchvisionBackbone
from methods.backbones import backbone_spec, create_timm, register_backbone

RESNET = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
TV_NOTES = "torchvision, random init; forward_features = last conv stage (stride 32), adaptive pooling before the head"


def torchvision_backbone(name: str, net: nn.Module, classifier: str, num_features: int) -> TorchvisionBackbone:
    """`net` with `forward_features` ending at backbone `name`'s registered `feature_layer` (a child of `.net`)."""
    layer = backbone_spec(name).feature_layer
    return TorchvisionBackbone(net, layer.removeprefix("net."), classifier, num_features)


@register_backbone("googlenet", min_image_size=32, feature_layer="net.inception5b",
                   notes=TV_NOTES + "; no auxiliary classifiers",
                   citation="Szegedy et al., Going Deeper with Convolutions, CVPR 2015")
def googlenet(num_classes: int, image_size: int) -> nn.Module:
    """GoogLeNet / Inception v1 (torchvision, aux_logits off)."""
    net = tv.googlenet(weights=None, num_classes=num_classes, aux_logits=False, init_weights=True)
    return torchvision_backbone("googlenet", net, "fc", 1024)


@register_backbone("resnet18", min_image_size=32, feature_layer="net.layer4", notes=TV_NOTES, citation=RESNET)
def resnet18(num_classes: int, image_size: int) -> nn.Module:
    """ResNet-18 (torchvision)."""
    return torchvision_backbone("resnet18", tv.resnet18(weights=None, num_classes=num_classes), "fc", 512)


@register_backbone("resnet50", min_image_size=32, feature_layer="net.layer4", notes=TV_NOTES, citation=RESNET)
def resnet50(num_classes: int, image_size: int) -> nn.Module:
    """ResNet-50 (torchvision)."""
    return torchvision_backbone("resnet50", tv.resnet50(weights=None, num_classes=num_classes), "fc", 2048)


@register_backbone("vgg16", min_image_size=32, feature_layer="net.features", cam_layer="net.features.29",
                   notes=TV_NOTES + "; 7x7 adaptive pool feeds the 4096-wide classifier",
                   citation="Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
                            "Recognition, ICLR 2015")
def vgg16(num_classes: int, image_size: int) -> nn.Module:
    """VGG-16 without batch norm (torchvision)."""
    return torchvision_backbone("vgg16", tv.vgg16(weights=None, num_classes=num_classes), "classifier.6", 512)


@register_backbone("seresnet18", min_image_size=32, feature_layer="layer4", notes="timm seresnet18",
                   citation="Hu, Shen and Sun, Squeeze-and-Excitation Networks, CVPR 2018")
def seresnet18(num_classes: int, image_size: int) -> nn.Module:
    """ResNet-18 with squeeze-and-excitation channel attention (timm)."""
    return create_timm("seresnet18", num_classes, image_size)


@register_backbone("ecaresnet26t", min_image_size=32, feature_layer="layer4",
                   notes="timm ecaresnet26t (tiered 3-conv stem)",
                   citation="Wang et al., ECA-Net: Efficient Channel Attention for Deep Convolutional Neural "
                            "Networks, CVPR 2020")
def ecaresnet26t(num_classes: int, image_size: int) -> nn.Module:
    """ResNet-26-T with efficient channel attention (timm)."""
    return create_timm("ecaresnet26t", num_classes, image_size)


@register_backbone("cbam_resnet18", min_image_size=32, feature_layer="layer4",
                   notes="timm resnet18 with block_args=dict(attn_layer='cbam'): timm's CBAM in every block",
                   citation="Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018")
def cbam_resnet18(num_classes: int, image_size: int) -> nn.Module:
    """ResNet-18 with CBAM channel + spatial attention in each block (timm layers)."""
    return create_timm("resnet18", num_classes, image_size, block_args=dict(attn_layer="cbam"))


@register_backbone("vit_tiny", min_image_size=12,
                   notes="timm vit_tiny_patch16_224 with patch_size=12 and img_size=image_size (84 px → 7x7 tokens); "
                         "inputs must be exactly image_size; weights from patch-16 checkpoints are resampled by timm",
                   citation="Dosovitskiy et al., An Image is Worth 16x16 Words: Transformers for Image Recognition "
                            "at Scale, ICLR 2021")
def vit_tiny(num_classes: int, image_size: int) -> nn.Module:
    """ViT-Tiny (timm), patch 12."""
    return create_timm("vit_tiny_patch16_224", num_classes, image_size, patch_size=12)


@register_backbone("swin_tiny", min_image_size=32,
                   notes="timm swin_tiny_patch4_window7_224 with img_size=image_size: patch 4, window 7; timm shrinks "
                         "a window to a smaller token grid and pads a grid the window does not divide (84 px: grids "
                         "21, 11, 6, 3 with windows 7, 7, 6, 3); inputs must be exactly image_size",
                   citation="Liu et al., Swin Transformer: Hierarchical Vision Transformer using Shifted Windows, "
                            "ICCV 2021")
def swin_tiny(num_classes: int, image_size: int) -> nn.Module:
    """Swin-T (timm)."""
    return create_timm("swin_tiny_patch4_window7_224", num_classes, image_size)


@register_backbone("tiny_cnn", min_image_size=8, feature_layer="features", notes="about 6k parameters; for fast tests and quick experiments",
                   citation="this project (no paper)")
def tiny_cnn(num_classes: int, image_size: int) -> nn.Module:
    """Three-layer CNN (8-16-32 channels) for fast tests."""
    return TinyCNN(num_classes)


@register_backbone("small_cnn", min_image_size=8, feature_layer="features", notes="about 100k parameters; the quick experiment's backbone",
                   citation="this project (no paper)")
def small_cnn(num_classes: int, image_size: int) -> nn.Module:
    """Four-layer CNN (16-32-64-128 channels), small enough for CPU sweeps."""
    return TinyCNN(num_classes, widths=(16, 32, 64, 128))
