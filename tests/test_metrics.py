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


def test_multiclass_auroc_matches_scikit_learn_on_saturated_ties():
    """Row re-normalisation broke the tie between 1.0 and 1.0/(1+1e-10); scikit-learn gives 2/3 here."""
    from sklearn.metrics import roc_auc_score

    probs = np.array([[1, 0, 0], [1, 1e-10, 0], [0, 0, 1]], dtype=np.float64)
    labels = np.array([1, 0, 2])
    expected = roc_auc_score(labels, probs, multi_class="ovr")
    assert expected == pytest.approx(2 / 3)
    assert classification_metrics(probs, labels, positive=1)["auroc"] == pytest.approx(expected, abs=1e-12)


def test_multiclass_auroc_matches_scikit_learn_on_float32_softmax():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(400, 4)) * 12).astype(np.float32)
    probs32 = np.exp(logits - logits.max(1, keepdims=True))
    probs32 /= probs32.sum(1, keepdims=True)
    labels = rng.integers(0, 4, 400)
    expected = roc_auc_score(labels, probs32.astype(np.float64), multi_class="ovr")
    assert classification_metrics(probs32, labels, positive=1)["auroc"] == pytest.approx(expected, abs=1e-12)


def test_multiclass_auroc_over_the_classes_present_when_one_is_missing():
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import label_binarize

    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(4), size=60)
    labels = rng.choice([0, 1, 3], size=60)
    expected = roc_auc_score(label_binarize(labels, classes=[0, 1, 3]), probs[:, [0, 1, 3]], average="macro")
    got = classification_metrics(probs, labels, positive=1)["auroc"]
    assert np.isfinite(got) and got == pytest.approx(expected, abs=1e-12)


def test_auroc_is_nan_only_with_a_single_class_present():
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
    assert np.isnan(classification_metrics(probs, np.array([0, 0]), positive=1)["auroc"])
