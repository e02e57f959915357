"""The registry of what the benchmark compares: methods (objectives, model changes) and backbones.

Importing `methods` registers the built-in methods and backbones; `load_plugins` adds user ones.
"""

from methods import alpha_js, bilinear, objectives, zoo  # noqa: F401  (registers the built-ins)
from methods.backbones import backbone_info, build_backbone, list_backbones, register_backbone
from methods.base import Method, require
from methods.plugins import load_plugins
from methods.registry import build, list_methods, method_info, register_method, resolve_params

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
