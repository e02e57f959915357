"""The backbone registry: `register_backbone`, `build_backbone`, `list_backbones`, `backbone_info`.

Contract: every module returned by `build_backbone(name, num_classes, image_size)` is an `nn.Module` with

- `forward(x: [N, 3, S, S]) -> logits [N, num_classes]` for S = image_size,
- `forward_features(x) -> [N, C, H, W]`: the last feature map before global pooling, channels first,
- `num_features: int`: C, the channel count of that feature map,
- `get_classifier() -> nn.Module`: the classification head (used to re-make it when loading weights).

timm CNNs satisfy it as they are. torchvision classifiers are wrapped in `TorchvisionBackbone` and timm
transformers (token outputs) in `TimmTokenBackbone` (see `methods.adapters`); both keep the original network in
`.net`. Backbones are randomly initialised; nothing is ever downloaded. `weights=PATH` loads a local state dict.

Registered names come from `@register_backbone` on a factory `f(num_classes: int, image_size: int) -> nn.Module`
whose docstring's first line is the description; its `BackboneSpec` in `BACKBONES` holds all that is known about the
backbone (minimum image size, feature and CAM layers). Any other timm architecture is available as `timm:<name>`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
from torch import nn

from methods.adapters import TimmTokenBackbone, needs_token_adapter
from methods.errors import UserError
from methods.registry_core import Registry
from methods.weights import load_weights

TIMM_PREFIX = "timm:"
Factory = Callable[[int, int], nn.Module]


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: its factory, what `backbone_info` says about it, and its layers.

    `feature_layer` and `cam_layer` are dotted module paths inside the built backbone: the module whose output is
    `forward_features` (what bilinear pooling and the diversity analysis use) and the target layer of the class
    activation maps. None where no single module fits (transformers: the CAM layer is then found from the model).
    """

    name: str
    factory: Factory
    description: str
    citation: str
    min_image_size: int
    notes: str
    feature_layer: str | None = None
    cam_layer: str | None = None

    @property
    def origin(self) -> str:
        return f"{self.factory.__module__}.{self.factory.__qualname__}"


BACKBONES: Registry[BackboneSpec] = Registry(
    "backbone", builtins=("methods.zoo",), describe=lambda s: s.origin,
    unknown_note=f" (any timm architecture works as '{TIMM_PREFIX}<name>')",
)


def register_backbone(name: str, *, citation: str = "", min_image_size: int = 32, notes: str = "",
                      feature_layer: str | None = None, cam_layer: str | None = None):
    """Decorator: register a factory `f(num_classes, image_size) -> nn.Module` under `name`; returns it unchanged.

    `cam_layer` defaults to `feature_layer`. A taken name or one with the prefix `timm:` → `ValueError`.
    """

    def decorator(factory: Factory) -> Factory:
        params = inspect.signature(factory).parameters
        if not {"num_classes", "image_size"} <= set(params):
            raise TypeError(f"backbone factory {factory.__qualname__} must take (num_classes, image_size)")
        if name.startswith(TIMM_PREFIX):
            raise ValueError(f"backbone '{name}' uses the reserved prefix '{TIMM_PREFIX}'")
        description = (factory.__doc__ or "").strip().splitlines()
        BACKBONES.register(name, BackboneSpec(
            name, factory, description[0].strip() if description else "", citation, min_image_size, notes,
            feature_layer, cam_layer if cam_layer is not None else feature_layer,
        ))
        return factory

    return decorator


def backbone_spec(name: str) -> BackboneSpec | None:
    """The spec of registered backbone `name`; None for `timm:` names and names not registered."""
    return BACKBONES.find(name)


def list_backbones(pattern: str = "*") -> list[str]:
    """Sorted names of the registered backbones matching the fnmatch `pattern` (not the whole of timm)."""
    return BACKBONES.names(pattern)


def _timm_arch(name: str) -> str:
    arch = name[len(TIMM_PREFIX):]
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else "see timm.list_models()"
        raise UserError(f"unknown timm architecture '{arch}' in backbone '{name}'; {hint}")
    return arch


def backbone_info(name: str) -> dict[str, Any]:
    """`{name, description, citation, min_image_size, notes}`; min_image_size is None for `timm:` names."""
    if name.startswith(TIMM_PREFIX):
        arch = _timm_arch(name)
        return {
            "name": name,
            "description": f"timm architecture {arch} (timm.create_model, random init)",
            "citation": "Wightman, PyTorch Image Models (timm), https://github.com/huggingface/pytorch-image-models",
            "min_image_size": None,
            "notes": "fixed-input-size models (ViT, Swin, ...) are built with img_size=image_size",
        }
    spec = BACKBONES.get(name)
    return {
        "name": spec.name,
        "description": spec.description,
        "citation": spec.citation,
        "min_image_size": spec.min_image_size,
        "notes": spec.notes,
    }


def create_timm(arch: str, num_classes: int, image_size: int, **kwargs: Any) -> nn.Module:
    """A randomly initialised timm model meeting the backbone contract (img_size set where the input is fixed)."""
    cfg = timm.models.get_pretrained_cfg(arch.split(".")[0])
    if cfg is not None and cfg.fixed_input_size:
        kwargs.setdefault("img_size", image_size)
    net = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    return TimmTokenBackbone(net) if needs_token_adapter(net) else net


def _check_int(what: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{what} must be an integer >= {low}, got {value!r}")


def _check_layers(model: nn.Module, spec: BackboneSpec) -> None:
    """A registered layer path the built model lacks → `UserError` (a plugin's spec is checked like the contract)."""
    for what, path in (("feature_layer", spec.feature_layer), ("cam_layer", spec.cam_layer)):
        if path is None:
            continue
        try:
            model.get_submodule(path)
        except AttributeError:
            raise UserError(f"backbone '{spec.name}' declares {what} '{path}', which the built model lacks") from None


def build_backbone(name: str, num_classes: int, image_size: int, weights: str | Path | None = None) -> nn.Module:
    """Backbone `name` (registered, or `timm:<arch>`) for `num_classes` and square `image_size` inputs.

    Random init unless `weights` names a local state-dict file; its classifier-head entries of another shape are
    ignored (the head stays new). Unknown name, too small an image, a missing or non-matching file → `UserError`.
    """
    _check_int("num_classes", num_classes, 2)
    _check_int("image_size", image_size, 1)
    if name.startswith(TIMM_PREFIX):
        model = create_timm(_timm_arch(name), num_classes, image_size)
    else:
        spec = BACKBONES.get(name)
        if image_size < spec.min_image_size:
            raise UserError(f"backbone '{name}' needs image_size >= {spec.min_image_size}, got {image_size}")
        model = spec.factory(num_classes=num_classes, image_size=image_size)
        _check_layers(model, spec)
    missing = [a for a in ("forward_features", "num_features", "get_classifier") if not hasattr(model, a)]
    if missing:
        raise UserError(f"backbone '{name}' breaks the backbone contract: it lacks {', '.join(missing)}")
    if weights is not None:
        load_weights(model, Path(weights), name)
    return model


snapshot = BACKBONES.snapshot
restore = BACKBONES.restore
