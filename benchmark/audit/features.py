"""Simple per-image statistics: what a trivial classifier may use instead of the solder."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

LUMA = np.array([0.299, 0.587, 0.114])


def grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an HxWx3 image, float64 in 0..255."""
    return rgb.astype(np.float64) @ LUMA


def colour_stats(rgb: np.ndarray) -> dict[str, float]:
    """Mean R, G, B and contrast (standard deviation of the luma)."""
    means = rgb.reshape(-1, 3).astype(np.float64).mean(axis=0)
    return {"mean_r": float(means[0]), "mean_g": float(means[1]), "mean_b": float(means[2]), "contrast": float(grey(rgb).std())}


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the luma (low: blurred, e.g. an up-scaled small crop)."""
    return float(ndimage.laplace(grey(rgb), mode="reflect").var())
