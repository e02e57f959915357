"""Evaluating a model on one part of the fold: probabilities and loss, the per-epoch selection scores, and the check
that the outputs are finite before any metric is computed from them."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import precision_recall_fscore_support

from benchmark.metrics import classification_metrics
from benchmark.train.batches import FoldData
from benchmark.train.device import _autocast


class RunFailed(Exception):
    """A run that cannot finish (NaN loss, ...): recorded as failed, the sweep goes on."""


def scored(probs: np.ndarray, labels: np.ndarray, positive: int, what: str) -> dict:
    """Every metric of one evaluation (`classification_metrics`), once its outputs are checked finite."""
    require_finite(probs, what)
    return classification_metrics(probs, labels, positive)


def require_finite(probs: np.ndarray, what: str) -> None:
    """Fail the run when a model's outputs hold NaN or inf (`what` says which: 'epoch 3: the validation outputs'),
    before any metric is computed from them."""
    if not np.isfinite(probs).all():
        raise RunFailed(f"{what} are not finite (NaN or inf): training diverged; a lower train.optimizer.lr usually "
                        "helps")


def evaluate(model, objective, data: FoldData, part: str, batch_size: int, amp: bool) -> tuple[np.ndarray, float]:
    """Probabilities and mean objective value over one part, without autograd (one device sync at the end)."""
    x_all, y_all = data.parts[part]
    model.eval()
    probs, losses, sizes = [], [], []
    with torch.inference_mode():
        for start in range(0, len(y_all), batch_size):
            x = data.to_input(x_all[start : start + batch_size])
            y = y_all[start : start + batch_size]
            with _autocast(data.device, amp):
                logits = model(x)
            logits = logits.float()
            losses.append(objective(logits, y))
            sizes.append(len(y))
            probs.append(torch.softmax(logits, dim=1))
        if not probs:
            return np.zeros((0, 0)), float("nan")
        out = torch.cat(probs).cpu().double().numpy()
        loss_sum = (torch.stack(losses).cpu().double() * torch.tensor(sizes, dtype=torch.float64)).sum()
    return out, float(loss_sum) / len(y_all)


def epoch_scores(probs: np.ndarray, labels: np.ndarray, positive: int) -> dict:
    """The per-epoch selection scores (accuracy, positive-class F1, macro F1), defined as in `classification_metrics`
    but from one scikit-learn call: the epoch loop needs no calibration or AUROC."""
    pred = probs.argmax(axis=1)
    classes = list(range(probs.shape[1]))
    _, _, f1, _ = precision_recall_fscore_support(labels, pred, labels=classes, zero_division=0)
    return {"accuracy": float(np.mean(pred == labels)), "f1": float(f1[positive]), "macro_f1": float(np.mean(f1))}
