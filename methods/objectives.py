"""Training objectives on logits: cross-entropy and its entropy / confusion regularised variants.

Everything is computed from `log_softmax`, so values and gradients stay finite for saturated logits.
Each objective returns the batch mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.base import Method, require
from methods.registry import register_method
from methods.space import LogUniform, Uniform


def entropy(log_probs: Tensor) -> Tensor:
    """Shannon entropy in nats of each row, from log-probabilities (0·log 0 is 0, never NaN)."""
    return -(log_probs.exp() * log_probs).sum(-1)


@register_method("ce")
class CrossEntropy(Method):
    """Cross-entropy, the baseline."""

    citation = "baseline: negative log-likelihood of the softmax"

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets)


@register_method("label_smoothing")
class LabelSmoothing(Method):
    """Cross-entropy against targets smoothed towards the uniform distribution by epsilon."""

    citation = "Szegedy et al., Rethinking the Inception Architecture for Computer Vision, CVPR 2016"
    search_space = {"epsilon": Uniform(0.01, 0.3)}

    def __init__(self, epsilon: float = 0.1):
        super().__init__()
        require(0 <= epsilon < 1, "label_smoothing", f"epsilon must be in [0, 1), got {epsilon}")
        self.epsilon = epsilon

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=self.epsilon)


@register_method("confidence_penalty")
class ConfidencePenalty(Method):
    """Cross-entropy minus beta times the predictive entropy; with a threshold, a hinge beta·max(0, threshold - H).

    Without a threshold this is the objective of max_entropy with gamma = beta (CE - beta·H): one computation.
    """

    citation = (
        "Pereyra et al., Regularizing Neural Networks by Penalizing Confident Output Distributions, "
        "ICLR workshop 2017"
    )
    search_space = {"beta": LogUniform(0.01, 1.0)}

    def __init__(self, beta: float = 0.1, threshold: float | None = None):
        super().__init__()
        require(beta >= 0, "confidence_penalty", f"beta must be >= 0, got {beta}")
        require(threshold is None or threshold >= 0, "confidence_penalty", f"threshold must be >= 0, got {threshold}")
        self.beta = beta
        self.threshold = threshold

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        h = entropy(F.log_softmax(logits, dim=-1))
        penalty = -h if self.threshold is None else F.relu(self.threshold - h)
        return F.cross_entropy(logits, targets) + self.beta * penalty.mean()


@register_method("max_entropy")
class MaxEntropy(Method):
    """Cross-entropy minus gamma times the predictive entropy (maximum-entropy fine-grained classification).

    The same objective as confidence_penalty with beta = gamma and no threshold (CE - gamma·H): one computation.
    """

    citation = "Dubey et al., Maximum-Entropy Fine-Grained Classification, NeurIPS 2018"
    search_space = {"gamma": LogUniform(0.01, 1.0)}

    def __init__(self, gamma: float = 0.1):
        super().__init__()
        require(gamma >= 0, "max_entropy", f"gamma must be >= 0, got {gamma}")
        self.gamma = gamma

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        h = entropy(F.log_softmax(logits, dim=-1))
        return F.cross_entropy(logits, targets) - self.gamma * h.mean()


@register_method("focal")
class Focal(Method):
    """Focal loss -(1 - p_t)^gamma · log p_t, down-weighting well-classified samples."""

    citation = "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017"
    search_space = {"gamma": Uniform(0.5, 5.0)}

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        require(gamma >= 0, "focal", f"gamma must be >= 0, got {gamma}")
        self.gamma = gamma

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        log_pt = F.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
        # 1 - p_t via expm1 is exact near p_t = 1; the floor keeps the gradient of x^gamma finite at x = 0.
        one_minus_pt = (-torch.expm1(log_pt)).clamp_min(torch.finfo(log_pt.dtype).tiny)
        return -(one_minus_pt.pow(self.gamma) * log_pt).mean()


@register_method("pairwise_confusion")
class PairwiseConfusion(Method):
    """Cross-entropy plus lambda_ times the mean squared distance between predictions of differently-labelled pairs."""

    citation = "Dubey et al., Pairwise Confusion for Fine-Grained Visual Classification, ECCV 2018"
    search_space = {"lambda_": LogUniform(0.01, 1.0)}

    def __init__(self, lambda_: float = 0.1):
        super().__init__()
        require(lambda_ >= 0, "pairwise_confusion", f"lambda_ must be >= 0, got {lambda_}")
        self.lambda_ = lambda_

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        p = F.softmax(logits, dim=-1)
        squared = (p[:, None, :] - p[None, :, :]).pow(2).sum(-1)
        different = targets[:, None] != targets[None, :]
        confusion = (squared * different).sum() / different.sum().clamp_min(1)
        return F.cross_entropy(logits, targets) + self.lambda_ * confusion
