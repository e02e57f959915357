"""On CUDA (skipped without a GPU): the same run gives the same results as on the CPU, speed options do not change
them, and mixed precision (fp16 with a gradient scaler) trains to finite probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import augmented_experiment, train_tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return augmented_experiment(tmp_path_factory.mktemp("cuda"))


def _train(setup, overrides: list[str], name: str, device: str):
    return train_tiny(setup, ["train.epochs=3", *overrides], name, device)


def _probs(result) -> np.ndarray:
    return result.predictions[[c for c in result.predictions if c.startswith("prob_")]].to_numpy()


@pytest.fixture()
def no_tf32(monkeypatch):
    """Full float32 on the GPU (cuDNN convolutions use TF32 by default on Ampere and later)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def test_cuda_matches_cpu(setup, no_tf32):
    cpu, gpu = _train(setup, [], "cpu", "cpu"), _train(setup, [], "gpu", "cuda")
    np.testing.assert_allclose(_probs(gpu), _probs(cpu), atol=2e-3)
    np.testing.assert_allclose(gpu.history["train_loss"], cpu.history["train_loss"], rtol=2e-3)


def test_channels_last_and_eval_batch_do_not_change_cuda_results(setup):
    base = _train(setup, ["train.channels_last=true", "train.eval_batch_size=256"], "cl", "cuda")
    other = _train(setup, ["train.channels_last=false", "train.eval_batch_size=3"], "cf", "cuda")
    np.testing.assert_allclose(_probs(other), _probs(base), atol=2e-3)


def test_fp16_amp_trains_to_finite_probabilities_close_to_fp32(setup):
    amp, fp32 = _train(setup, ["train.amp=true"], "amp", "cuda"), _train(setup, [], "fp32", "cuda")
    probs = _probs(amp)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    assert np.abs(probs - _probs(fp32)).max() < 0.1


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_torch_compile_does_not_change_cuda_results(setup, no_tf32, mode):
    compiled = _train(setup, ["train.compile=true", f"train.compile_mode={mode}"], f"compiled-{mode}", "cuda")
    eager = _train(setup, [], f"eager-{mode}", "cuda")
    np.testing.assert_allclose(_probs(compiled), _probs(eager), atol=2e-3)
    np.testing.assert_allclose(compiled.history["train_loss"], eager.history["train_loss"], rtol=2e-3)


def test_deterministic_cuda_runs_repeat_exactly(setup):
    try:
        first = _train(setup, ["train.deterministic=true"], "det-1", "cuda")
        second = _train(setup, ["train.deterministic=true"], "det-2", "cuda")
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    np.testing.assert_array_equal(_probs(first), _probs(second))
    np.testing.assert_array_equal(first.history["train_loss"], second.history["train_loss"])
