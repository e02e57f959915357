"""Feature diversity: penultimate features, the entropy of their covariance spectrum and its effective rank."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from sklearn.decomposition import PCA
from torch import Tensor, nn

from benchmark.explain.cams import backbone_of

FEATURES = "global average of forward_features (the backbone's last feature map)"


def penultimate_features(model: nn.Module, inputs: Tensor, batch_size: int = 64) -> np.ndarray:
    """[N, C] float64: the backbone's last feature map averaged over space (for wrapped models, their backbone)."""
    backbone, _ = backbone_of(model)
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            out.append(backbone.forward_features(inputs[start : start + batch_size]).float().mean(dim=(2, 3)))
    return torch.cat(out).double().cpu().numpy()


def spectrum(features: np.ndarray) -> np.ndarray:
    """The normalized eigen-spectrum of the features' covariance (PCA explained-variance ratios, descending)."""
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 2 or not np.any(features.var(axis=0) > 0):
        return np.zeros(0)
    return PCA(svd_solver="full").fit(features).explained_variance_ratio_


def diversity(features: np.ndarray) -> dict[str, float]:
    """Spectral entropy H = -Σ pᵢ log pᵢ (nats) of the normalized covariance eigenvalues and effective rank exp(H).

    After Dubey et al., Maximum-Entropy Fine-Grained Classification (NeurIPS 2018) and Roy and Vetterli, The
    effective rank (2007). `effective_rank_ratio` divides by the largest possible rank, min(N - 1, D).
    """
    p = spectrum(features)
    n, d = np.asarray(features).shape
    entropy = float(stats.entropy(p)) if p.size else 0.0
    rank = float(np.exp(entropy)) if p.size else 0.0
    return {
        "n_images": int(n),
        "dim": int(d),
        "entropy": entropy,
        "effective_rank": rank,
        "effective_rank_ratio": rank / max(min(n - 1, d), 1),
        "top1_variance": float(p[0]) if p.size else float("nan"),
    }


def pca_2d(features: np.ndarray) -> np.ndarray:
    """[N, 2] projection on the first two principal components (zeros where there is no variance)."""
    features = np.asarray(features, dtype=np.float64)
    out = np.zeros((len(features), 2))
    if len(features) >= 2 and np.any(features.var(axis=0) > 0):
        k = min(2, len(features), features.shape[1])
        out[:, :k] = PCA(n_components=k, svd_solver="full").fit_transform(features)
    return out
