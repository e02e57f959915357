"""CE + β·JS_α(u, p): the α-skew Jensen-Shannon divergence to the uniform distribution (Ulger et al. 2023)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.base import Method, require
from methods.errors import UserError
from methods.objectives import entropy
from methods.registry import register_method
from methods.space import LogUniform, Uniform


def skew_js_to_uniform(logits: Tensor, alpha: float) -> Tensor:
    """JS_α(u, p) per row, p = softmax(logits), u uniform over the K classes.

    JS_α = [H(m) - (1-α)H(u) - αH(p)] / (α(1-α)) with m = (1-α)u + αp, evaluated in the equal, stable form
    KL(u‖m)/α + KL(p‖m)/(1-α) with log(m/u) and log(m/p) from `logaddexp`, so there is no log 0, no cancellation
    of large entropies near α → 0 or 1 (the limits are KL(p‖u) and KL(u‖p)), and saturated logits stay finite.
    """
    log_p = F.log_softmax(logits, dim=-1)
    log_k = math.log(logits.shape[-1])
    log_a, log_1ma = math.log(alpha), math.log1p(-alpha)
    log_m_over_u = torch.logaddexp(torch.full_like(log_p, log_1ma), log_a + log_k + log_p)
    log_m_over_p = torch.logaddexp(torch.full_like(log_p, log_a), log_1ma - log_k - log_p)
    kl_u_m = -log_m_over_u.mean(-1)
    kl_p_m = -(log_p.exp() * log_m_over_p).sum(-1)
    return (kl_u_m / alpha + kl_p_m / (1 - alpha)).clamp_min(0)


def reference_skew_js(logits: Tensor, alpha: float) -> Tensor:
    """The published script's two-class JS_α per row, including its second softmax of the mixture m."""
    p = F.softmax(logits, dim=-1)
    m = (1 - alpha) * 0.5 + alpha * p
    h_m = entropy(F.log_softmax(m, dim=-1))
    h_p = entropy(F.log_softmax(logits, dim=-1))
    return (h_m - (1 - alpha) * math.log(2) - alpha * h_p) / (alpha * (1 - alpha))


@register_method("alpha_js")
class AlphaJS(Method):
    """Cross-entropy plus beta times the alpha-skew Jensen-Shannon divergence between uniform and the prediction.

    `variant="correct"` (default) is the divergence as defined in the paper, for any number of classes.
    `variant="reference"` is for reproducing the published numbers: it computes what the authors' script
    computes (two classes only, the mixture passed through softmax again before its entropy, H(u) = log 2).
    """

    citation = (
        "Ulger et al., Fine-Grained Classification of Solder Joints With alpha-Skew Jensen-Shannon Divergence, "
        "IEEE TCPMT 2023"
    )
    search_space = {"alpha": Uniform(0.05, 0.95), "beta": LogUniform(0.1, 10.0)}

    def __init__(self, alpha: float = 0.5, beta: float = 1.0, variant: Literal["correct", "reference"] = "correct"):
        super().__init__()
        require(0 < alpha < 1, "alpha_js", f"alpha must be in (0, 1), got {alpha}")
        require(beta >= 0, "alpha_js", f"beta must be >= 0, got {beta}")
        self.alpha = alpha
        self.beta = beta
        self.variant = variant

    def check_task(self, num_classes: int) -> None:
        if self.variant == "reference" and num_classes != 2:
            raise UserError(
                f"method 'alpha_js': variant='reference' reproduces the published two-class script and needs "
                f"2 classes, got {num_classes}; use variant='correct' for other tasks"
            )

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        divergence = skew_js_to_uniform if self.variant == "correct" else reference_skew_js
        return F.cross_entropy(logits, targets) + self.beta * divergence(logits, self.alpha).mean()
