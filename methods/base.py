"""The base class every compared method derives from, and the range check methods use."""

from __future__ import annotations

from torch import Tensor, nn

from methods.errors import UserError


class Method(nn.Module):
    """A compared method: a training objective on logits that may also change the model.

    Subclasses implement `forward(logits [N, K] float, targets [N] long) -> scalar` (the batch mean) and may
    override `wrap_model` to replace or extend the backbone (e.g. `bilinear`). A run calls, once each and in this
    order: `check_task`, `prepare` (the training part's class counts), `wrap_model`, then `forward` per batch. A method is an `nn.Module` so that
    it moves with `.to(device)` and may hold buffers; the built-in objectives hold no parameters.
    """

    def __init__(self) -> None:
        super().__init__()

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward(logits, targets)")

    def check_task(self, num_classes: int) -> None:
        """Raise a `UserError` if this method cannot train a task with `num_classes` classes (checked before any run,
        and once more when a run builds its method)."""

    def prepare(self, class_counts: list[int], class_names: list[str]) -> None:
        """Called once per run, before training: the training part's number of images per class (index = label) and
        the class names. A prior-aware method (e.g. `logit_adjustment`) keeps what it needs here, as a buffer
        (`register_buffer`) so that it moves to the training device with the method; the default does nothing."""

    def wrap_model(self, model: nn.Module, num_classes: int) -> nn.Module:
        """Return the model this method trains; the backbone unchanged unless a method overrides it."""
        return model


def require(condition: bool, method: str, message: str) -> None:
    """Raise a `UserError` "method '<method>': <message>" unless `condition` holds (NaN fails every comparison)."""
    if not condition:
        raise UserError(f"method '{method}': {message}")
