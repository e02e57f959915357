"""Explanations of trained runs: class activation maps, their robustness to noise, and feature diversity."""

from benchmark.explain.build import PARTS, Options, explain
from benchmark.explain.cams import CAM_METHODS, cam_target, compute_cams, target_layers
from benchmark.explain.diversity import diversity, penultimate_features
from benchmark.explain.noise import add_noise, map_stability

__all__ = [
    "CAM_METHODS",
    "PARTS",
    "Options",
    "add_noise",
    "cam_target",
    "compute_cams",
    "diversity",
    "explain",
    "map_stability",
    "penultimate_features",
    "target_layers",
]
