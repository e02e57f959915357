"""The registry of what the benchmark compares: methods (objectives, model changes) and backbones.

Importing `methods` is cheap and needs nothing of `benchmark`: the public names below load on first use, and the
built-in methods and backbones register on the first use of their registry (`methods.registry_core.Registry`).
`load_plugins` adds user ones.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from methods.backbones import backbone_info, build_backbone, list_backbones, register_backbone
    from methods.base import Method, require
    from methods.plugins import load_plugins
    from methods.registry import build, list_methods, method_info, register_method, resolve_params

_HOMES = {
    "Method": "methods.base",
    "require": "methods.base",
    "backbone_info": "methods.backbones",
    "build_backbone": "methods.backbones",
    "list_backbones": "methods.backbones",
    "register_backbone": "methods.backbones",
    "load_plugins": "methods.plugins",
    "build": "methods.registry",
    "list_methods": "methods.registry",
    "method_info": "methods.registry",
    "register_method": "methods.registry",
    "resolve_params": "methods.registry",
}

__all__ = [
    "Method",
    "backbone_info",
    "build",
    "build_backbone",
    "list_backbones",
    "list_methods",
    "load_plugins",
    "method_info",
    "register_backbone",
    "register_method",
    "require",
    "resolve_params",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562) and keep the name here."""
    if name not in _HOMES:
        raise AttributeError(f"module 'methods' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
