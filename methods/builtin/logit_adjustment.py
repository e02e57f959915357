"""Logit adjustment (Menon et al. 2021): cross-entropy on logits shifted by tau × log of the training class priors."""
import torch
from torch.nn.functional import cross_entropy

from methods import Method, register_method, require
from methods.space import Uniform


@register_method("logit_adjustment")
class LogitAdjustment(Method):
    """Cross-entropy on the logits plus tau × the log prior of each class in the training part (prior-aware)."""
    citation = "Menon et al., Long-tail learning via logit adjustment, ICLR 2021"
    search_space = {"tau": Uniform(0.0, 2.0)}

    def __init__(self, tau: float = 1.0):
        super().__init__()
        require(tau >= 0, "logit_adjustment", f"tau must be >= 0, got {tau}")
        self.tau = tau

    def prepare(self, class_counts: list[int], class_names: list[str]) -> None:
        counts = torch.tensor(class_counts, dtype=torch.float32).clamp_min(1)  # a class absent counts as one image
        self.register_buffer("log_prior", (counts / counts.sum()).log())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits + self.tau * self.log_prior, targets)
