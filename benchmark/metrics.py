"""Classification metrics from predicted probabilities (scikit-learn where it has them)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

ECE_BINS = 15


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE with equal-width confidence bins: sum_b |B|/N * |acc(B) - conf(B)|."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def predictive_entropy(probs: np.ndarray) -> float:
    """Mean Shannon entropy of the predicted distributions, in nats."""
    p = np.clip(probs.astype(np.float64), 1e-300, 1.0)
    return float(-(probs * np.log(p)).sum(axis=1).mean())


def one_vs_rest_auroc(probs: np.ndarray, labels: np.ndarray, positive: int) -> float:
    """Binary: AUROC of the positive class. K > 2: macro one-vs-rest AUROC over the classes present in `labels`.

    Scores are used as given (no re-normalisation, which would break ties between saturated float32
    probabilities); with every class present this equals scikit-learn's `roc_auc_score(multi_class="ovr")`.
    NaN only when fewer than two classes are present.
    """
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels == positive, probs[:, positive]))
    return float(np.mean([roc_auc_score(labels == c, probs[:, c]) for c in present]))


def classification_metrics(probs: np.ndarray, labels: np.ndarray, positive: int) -> dict:
    """All scalar metrics plus the confusion matrix (as a list of lists) for one evaluation."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    k = probs.shape[1]
    classes = list(range(k))
    pred = probs.argmax(axis=1)
    auroc = one_vs_rest_auroc(probs, labels, positive)
    onehot = np.eye(k)[labels]
    clipped = np.clip(probs, 1e-15, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return {
        "accuracy": float(accuracy_score(labels, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
        "precision": float(precision_score(labels, pred, labels=[positive], average="macro", zero_division=0)),
        "recall": float(recall_score(labels, pred, labels=[positive], average="macro", zero_division=0)),
        "f1": float(f1_score(labels, pred, labels=[positive], average="macro", zero_division=0)),
        "macro_f1": float(f1_score(labels, pred, labels=classes, average="macro", zero_division=0)),
        "auroc": auroc,
        "nll": float(log_loss(labels, clipped, labels=classes)),
        "ece": expected_calibration_error(probs, labels),
        "brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
        "entropy": predictive_entropy(probs),
        "confusion": confusion_matrix(labels, pred, labels=classes).tolist(),
    }
