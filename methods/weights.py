"""Loading a local weights file into a backbone, re-making the classifier head when its shape differs."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from timm.models import load_state_dict
from torch import nn

from methods.errors import UserError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _target(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """The module whose key names the file uses: the backbone itself or the network it wraps (`.net`)."""
    candidates = [model]
    if isinstance(getattr(model, "net", None), nn.Module):
        candidates.append(model.net)
    return max(candidates, key=lambda m: len(state.keys() & m.state_dict().keys()))


def _head_prefixes(model: nn.Module, module: nn.Module) -> set[str]:
    """Names, inside `module`, of the backbone's classifier head (`model.get_classifier()`, timm's cfg)."""
    head = model.get_classifier()
    prefixes = {name for name, sub in module.named_modules() if sub is head and name}
    cfg = getattr(module, "pretrained_cfg", None) or {}
    classifier = cfg.get("classifier") if isinstance(cfg, dict) else None
    if classifier:
        prefixes |= {classifier} if isinstance(classifier, str) else set(classifier)
    return prefixes


def _timm_filter(module: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply the checkpoint filter timm uses for this architecture (resamples ViT position / patch embeddings)."""
    module_name = type(module).__module__
    filter_fn = getattr(sys.modules.get(module_name), "checkpoint_filter_fn", None)
    if not module_name.startswith("timm.") or filter_fn is None:
        return state
    return filter_fn(state, module)


def _examples(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def load_weights(model: nn.Module, path: Path, backbone: str) -> None:
    """Load the state dict in `path` (torch or safetensors file, read with weights_only=True) into `model`.

    Classifier-head entries whose shape differs from the model's are ignored, so the head stays the new one made
    for this number of classes. Any other missing, unexpected or mis-shaped entry → `UserError` naming the file.
    """
    if not path.is_file():
        raise UserError(f"weights file {path} for backbone '{backbone}' does not exist")
    try:
        state = load_state_dict(str(path), weights_only=True)
    except Exception as exc:
        raise UserError(f"weights file {path} could not be read as a state dict: {_first_line(exc)}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file {path} does not hold a state dict (a mapping of names to tensors)")
    target = _target(model, state)
    try:
        state = _timm_filter(target, dict(state))
    except Exception as exc:
        raise UserError(f"weights file {path} does not match backbone '{backbone}': {_first_line(exc)}") from None
    heads = _head_prefixes(model, target)

    def is_head(key: str) -> bool:
        return any(key.startswith(prefix + ".") for prefix in heads)

    own = target.state_dict()
    for key in [k for k in state if k in own and state[k].shape != own[k].shape and is_head(k)]:
        del state[key]
    wrong_shape = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
                   if k in own and state[k].shape != own[k].shape]
    missing = [k for k in own if k not in state and not is_head(k) and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own and not is_head(k)]
    problems = [f"{len(keys)} {what} ({_examples(keys)})" for what, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong_shape)) if keys]
    if problems:
        raise UserError(f"weights file {path} does not match backbone '{backbone}': {'; '.join(problems)}")
    target.load_state_dict(state, strict=False)
