"""Balanced softmax (Ren et al. 2020): the softmax weighted by the training part's class counts, in its loss only."""
import torch
from torch.nn.functional import cross_entropy

from methods import Method, register_method


@register_method("balanced_softmax")
class BalancedSoftmax(Method):
    """Cross-entropy of the softmax weighted by each class's training images (prior-aware; = logit_adjustment tau=1)."""

    citation = "Ren et al., Balanced Meta-Softmax for Long-Tailed Visual Recognition, NeurIPS 2020"

    def prepare(self, class_counts: list[int], class_names: list[str]) -> None:
        counts = torch.tensor(class_counts, dtype=torch.float32).clamp_min(1)  # a class absent counts as one image
        self.register_buffer("log_counts", counts.log())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits + self.log_counts, targets)
