import numpy as np
import pytest

from benchmark.metrics import classification_metrics, expected_calibration_error


def _ece_reference(probs, labels, bins=15):
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    total = 0.0
    for lo, hi in zip(np.linspace(0, 1, bins + 1)[:-1], np.linspace(0, 1, bins + 1)[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.sum() / len(conf) * abs(correct[inside].mean() - conf[inside].mean())
    return total


@pytest.mark.parametrize("k", [2, 5])
def test_metrics_against_direct_computation(k):
    rng = np.random.default_rng(k)
    logits = rng.normal(size=(200, k)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, k, 200)
    m = classification_metrics(probs, labels, positive=1)
    pred = probs.argmax(1)
    tp = ((pred == 1) & (labels == 1)).sum()
    precision, recall = tp / (pred == 1).sum(), tp / (labels == 1).sum()
    assert m["accuracy"] == pytest.approx((pred == labels).mean())
    assert m["precision"] == pytest.approx(precision) and m["recall"] == pytest.approx(recall)
    assert m["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert m["nll"] == pytest.approx(-np.log(probs[np.arange(200), labels]).mean())
    assert m["brier"] == pytest.approx(((probs - np.eye(k)[labels]) ** 2).sum(1).mean())
    assert m["entropy"] == pytest.approx(-(probs * np.log(probs)).sum(1).mean())
    assert m["ece"] == pytest.approx(_ece_reference(probs, labels))
    assert np.array(m["confusion"]).sum() == 200


def test_ece_zero_for_perfectly_calibrated_bins():
    probs = np.array([[1.0, 0.0]] * 10)
    assert expected_calibration_error(probs, np.zeros(10, dtype=int)) == 0.0
