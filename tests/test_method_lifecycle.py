"""One method lifecycle per run (check_task once, prepare with the training part's class counts, then training) and
the two prior-aware built-ins, each against an independent NumPy computation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import methods
from methods.builtin.logit_adjustment import LogitAdjustment
from tests.helpers import augmented_experiment

COUNTS = [40, 7, 3]


def _batch(k: int = 3, n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(scale=3.0, size=(n, k)), rng.integers(0, k, size=n)


def _loss(name: str, logits: np.ndarray, targets: np.ndarray, **params) -> float:
    method = methods.build(name, **params)
    method.prepare(COUNTS, ["a", "b", "c"])
    return method(torch.from_numpy(logits), torch.from_numpy(targets)).item()


def _np_nll(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean -log of the target's share of exp(scores), in float64."""
    shares = np.exp(scores - scores.max(1, keepdims=True))
    shares /= shares.sum(1, keepdims=True)
    return float(-np.log(shares[np.arange(len(targets)), targets]).mean())


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjustment_is_cross_entropy_of_prior_powered_softmax(tau):
    """Menon et al. (2021), eq. (10): p_y ∝ π_y^τ exp(f_y) with π the training class frequencies."""
    logits, targets = _batch()
    prior = np.array(COUNTS) / sum(COUNTS)
    weighted = prior**tau * np.exp(logits)
    expected = float(-np.log(weighted[np.arange(len(targets)), targets] / weighted.sum(1)).mean())
    assert _loss("logit_adjustment", logits, targets, tau=tau) == pytest.approx(expected, rel=1e-6)
    if tau == 0.0:
        assert expected == pytest.approx(_np_nll(logits, targets), rel=1e-9)  # no adjustment: plain cross-entropy


def test_balanced_softmax_is_the_count_weighted_softmax():
    """Ren et al. (2020), eq. (4): φ_y = n_y exp(η_y) / Σ_j n_j exp(η_j)."""
    logits, targets = _batch(seed=1)
    weighted = np.array(COUNTS) * np.exp(logits)
    expected = float(-np.log(weighted[np.arange(len(targets)), targets] / weighted.sum(1)).mean())
    assert _loss("balanced_softmax", logits, targets) == pytest.approx(expected, rel=1e-6)
    assert _loss("logit_adjustment", logits, targets, tau=1.0) == pytest.approx(expected, rel=1e-6)


def test_a_run_checks_the_task_once_and_prepares_the_method_with_the_training_part_counts(tmp_path):
    from benchmark.config import load_config
    from benchmark.dataset import prepare
    from benchmark.plan import RunSpec
    from benchmark.rundir import RunDir
    from benchmark.train import train_run

    calls: list[tuple] = []

    class Spy(LogitAdjustment):
        """Logit adjustment that notes the calls a run makes."""

        citation = "test"

        def check_task(self, num_classes: int) -> None:
            calls.append(("check_task", num_classes))

        def prepare(self, class_counts: list[int], class_names: list[str]) -> None:
            calls.append(("prepare", list(class_counts), list(class_names)))
            super().prepare(class_counts, class_names)

    saved = methods.registry.snapshot()
    try:
        methods.register_method("spy_prior")(Spy)
        root, path = augmented_experiment(tmp_path)
        cfg = load_config(path, ["train.epochs=2"])
        data = prepare(cfg)
        spec = RunSpec("r", "t", "spy_prior", {"tau": 1.0}, "tiny_cnn", None, 0, 0, 0)
        result = train_run(spec, cfg, data, RunDir(root / "runs" / "r"), torch.device("cpu"), show_progress=False)
    finally:
        methods.registry.restore(saved)
    fold = next(f for f in data.folds if (f.repeat, f.fold) == (0, 0))
    seen = Counter(int(data.files.labels[i]) for i in fold.train)
    expected = [seen[label] for label in range(len(data.class_names))]
    assert calls == [("check_task", 2), ("prepare", expected, list(data.class_names))]
    assert sum(expected) == result.n_train and np.isfinite(result.history["train_loss"]).all()


def test_docs_show_the_prior_aware_methods():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "methods.md").read_text()
    for name in ("logit_adjustment", "balanced_softmax", "prepare(self, class_counts"):
        assert name in text, name
    shown = text.split('method_info("focal")', 1)[1].split("```", 1)[0]
    info = methods.method_info("focal")
    assert all(f"'{key}'" in shown for key in info) and repr(info["space"]["gamma"]) in shown and info["citation"] in shown
    source = (Path(methods.__file__).parent / "builtin" / "logit_adjustment.py").read_text()
    assert source.split("@register_method", 1)[1].replace("\n\n    citation", "\n    citation") in text.replace("\n\n    citation", "\n    citation")


def test_non_finite_outputs_fail_the_run_before_any_metric(monkeypatch):
    from benchmark.train import evaluation
    from benchmark.train.evaluation import RunFailed, scored

    computed = []
    monkeypatch.setattr(evaluation, "classification_metrics", lambda *args: computed.append(args) or {})
    probs = np.array([[0.7, 0.3], [np.nan, np.nan], [0.2, 0.8]])
    with pytest.raises(RunFailed, match="the selected model's test outputs are not finite"):
        scored(probs, np.array([0, 1, 1]), 1, "the selected model's test outputs")
    assert computed == []
    scored(np.array([[0.7, 0.3], [0.2, 0.8]]), np.array([0, 1]), 1, "x")
    assert len(computed) == 1
