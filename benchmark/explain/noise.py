"""Image noise on the [0, 1] pixel scale and the stability of activation maps under it."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from benchmark.explain.defaults import NOISE_KINDS

TOP_FRACTION = 0.2


def noise_rng(seed: int, kind: str, level: float) -> np.random.Generator:
    """The same noise for a (seed, kind, level) whatever else is computed: every model sees identical images."""
    return np.random.default_rng([seed, NOISE_KINDS.index(kind), int(round(level * 1_000_000))])


def add_noise(images: Tensor, kind: str, level: float, seed: int) -> Tensor:
    """Noisy copies of images [N, C, H, W] in [0, 1], clipped to [0, 1].

    gaussian: x + N(0, level²) per pixel and channel. salt_pepper: a `level` fraction of the pixels (all channels)
    set to 0 or 1 with equal odds. Level 0 returns the images unchanged.
    """
    rng = noise_rng(seed, kind, level)
    n, c, h, w = images.shape
    if kind == "gaussian":
        noise = torch.from_numpy(rng.normal(0.0, 1.0, (n, c, h, w)).astype(np.float32))
        return (images + level * noise).clamp(0.0, 1.0)
    if kind == "salt_pepper":
        hit = torch.from_numpy(rng.random((n, 1, h, w)) < level)
        salt = torch.from_numpy(rng.random((n, 1, h, w)) < 0.5).to(images.dtype)
        return torch.where(hit, salt.expand(n, c, h, w), images)
    raise ValueError(f"unknown noise kind {kind!r}; allowed: {', '.join(NOISE_KINDS)}")


def top_region(maps: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Boolean masks [N, H, W] of each map's highest `fraction` of pixels (values at or above its quantile)."""
    flat = maps.reshape(len(maps), -1).astype(np.float64)
    threshold = np.quantile(flat, 1.0 - fraction, axis=1, keepdims=True)
    return (flat >= threshold).reshape(maps.shape)


def constant_maps(maps: np.ndarray) -> np.ndarray:
    """Per map: whether it is flat (e.g. from a 1x1 feature map), so that it localizes nothing."""
    flat = maps.reshape(len(maps), -1)
    return flat.max(axis=1) <= flat.min(axis=1)


def map_stability(clean: np.ndarray, noisy: np.ndarray, fraction: float = TOP_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Per image: Pearson r between the two maps and IoU of their top regions; NaN where either map is flat."""
    a = clean.reshape(len(clean), -1).astype(np.float64)
    b = noisy.reshape(len(noisy), -1).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        pearson = np.asarray(stats.pearsonr(a, b, axis=1).statistic, dtype=np.float64)
    ta, tb = top_region(clean, fraction), top_region(noisy, fraction)
    inter = (ta & tb).reshape(len(ta), -1).sum(axis=1)
    union = (ta | tb).reshape(len(ta), -1).sum(axis=1)
    iou = inter / np.maximum(union, 1)
    undefined = constant_maps(clean) | constant_maps(noisy)
    pearson[undefined] = np.nan
    iou[undefined] = np.nan
    return pearson, iou


def nan_mean(values: np.ndarray) -> float:
    """Mean of the defined values; NaN (without a warning) when there are none."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")
