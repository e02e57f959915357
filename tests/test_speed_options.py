"""Speed options that must not change results (channels_last, eval batch size, threads, torch.compile), and the
training pieces they act on (normalization statistics, batch augmentation, per-epoch scores), checked against NumPy."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.train import augment_batch, channel_stats, draw_augmentations, epoch_scores
from tests.helpers import augmented_experiment, train_tiny

COMPARED = ["accuracy", "f1", "macro_f1", "nll", "brier", "auroc"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return augmented_experiment(tmp_path_factory.mktemp("speed"))


def _train(setup, overrides: list[str], name: str):
    return train_tiny(setup, overrides, name)


def _assert_same(a, b) -> None:
    for key in COMPARED:
        assert a.test[key] == pytest.approx(b.test[key], abs=1e-4), key
        assert a.val[key] == pytest.approx(b.val[key], abs=1e-4), key
    assert a.selected_epoch == b.selected_epoch
    cols = ["train_loss", "train_accuracy", "val_loss", "val_f1"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols], atol=1e-4, rtol=0)
    probs = [c for c in a.predictions if c.startswith("prob_")]
    np.testing.assert_allclose(a.predictions[probs].to_numpy(), b.predictions[probs].to_numpy(), atol=1e-4)


def test_channels_last_does_not_change_results(setup):
    _assert_same(_train(setup, ["train.channels_last=true"], "cl"), _train(setup, ["train.channels_last=false"], "cf"))


def test_eval_batch_size_does_not_change_results(setup):
    _assert_same(_train(setup, ["train.eval_batch_size=256"], "e256"), _train(setup, ["train.eval_batch_size=3"], "e3"))


def test_thread_count_does_not_change_results(setup):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _train(setup, [], "t1")
        torch.set_num_threads(2)
        two = _train(setup, [], "t2")
    finally:
        torch.set_num_threads(before)
    _assert_same(one, two)


def test_amp_runs_and_gives_finite_probabilities(setup):
    result = _train(setup, ["train.amp=true"], "amp")
    probs = result.predictions[[c for c in result.predictions if c.startswith("prob_")]].to_numpy()
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)


def test_selection_scores_of_the_epoch_loop_match_the_final_metrics(setup):
    result = _train(setup, ["train.epochs=3"], "sel")
    row = result.history.set_index("epoch").loc[result.selected_epoch]
    assert row["val_f1"] == pytest.approx(result.val["f1"], abs=1e-12)
    assert row["val_macro_f1"] == pytest.approx(result.val["macro_f1"], abs=1e-12)
    assert row["val_accuracy"] == pytest.approx(result.val["accuracy"], abs=1e-12)
    assert row["val_loss"] == pytest.approx(result.val["loss"], rel=1e-9)


def test_channel_stats_match_numpy_float64():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (7, 5, 6, 3), dtype=np.uint8)
    mean, std = channel_stats(images)
    as_float = images.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, as_float.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, as_float.std(axis=(0, 1, 2), ddof=1), rtol=1e-12)


def test_augment_batch_matches_numpy_per_sample():
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (12, 3, 5, 5), dtype=np.uint8)
    draws = draw_augmentations(12, ["hflip", "vflip", "rot90"], torch.Generator().manual_seed(1))
    got = augment_batch(torch.from_numpy(images), draws).numpy()
    for i, img in enumerate(images):
        want = img
        if draws["hflip"][i]:
            want = want[:, :, ::-1]
        if draws["vflip"][i]:
            want = want[:, ::-1, :]
        want = np.rot90(want, int(draws["rot90"][i]), axes=(1, 2))
        np.testing.assert_array_equal(got[i], want)
    assert len({int(t) for t in draws["rot90"]}) > 1 and 0 < int(draws["hflip"].sum()) < 12


def test_augmentation_keeps_channels_last_layout():
    x = torch.zeros(6, 5, 5, 3, dtype=torch.uint8).permute(0, 3, 1, 2)
    draws = draw_augmentations(6, ["hflip", "vflip", "rot90"], torch.Generator().manual_seed(0))
    assert augment_batch(x, draws).is_contiguous(memory_format=torch.channels_last)


def test_epoch_scores_match_numpy_f1():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 40)
    probs = rng.dirichlet(np.ones(3), 40)
    pred = probs.argmax(1)
    f1 = []
    for c in range(3):
        tp = np.sum((pred == c) & (labels == c))
        fp = np.sum((pred == c) & (labels != c))
        fn = np.sum((pred != c) & (labels == c))
        f1.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0)
    scores = epoch_scores(probs, labels, positive=1)
    assert scores["f1"] == pytest.approx(f1[1], abs=1e-12)
    assert scores["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-12)
    assert scores["accuracy"] == pytest.approx(np.mean(pred == labels), abs=1e-12)


@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")), reason="torch.compile on the CPU needs a C++ compiler")
def test_torch_compile_does_not_change_results(setup):
    _assert_same(_train(setup, ["train.compile=true", "train.epochs=1"], "compiled"),
                 _train(setup, ["train.compile=false", "train.epochs=1"], "eager"))
