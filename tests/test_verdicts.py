"""Verdicts: the correlated Bayesian t-test with a ROPE equals baycomp and an independent Student-t computation;
seeds are averaged into one block per split, and the coverage of the intervals holds with that blocking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from baycomp import CorrelatedTTest
from scipy import stats

from benchmark.report import verdicts
from benchmark.report.stats import Comparison, corrected_ttest, pairs


@pytest.mark.parametrize(("folds", "runs", "rope"), [(5, 1, 0.01), (10, 1, 0.02), (5, 3, 0.01), (4, 2, 0.0)])
def test_probabilities_equal_baycomp(folds, runs, rope):
    rng = np.random.default_rng(folds * 10 + runs)
    x = rng.uniform(0.7, 0.9, folds * runs)
    y = x + rng.normal(0.01, 0.02, folds * runs)
    expected = CorrelatedTTest.probs(x, y, rope=rope, runs=runs)
    got = verdicts.verdict(y - x, 1.0 / (folds - 1), rope, higher_is_better=True)
    left, middle, right = expected if rope > 0 else (expected[0], 0.0, expected[1])
    assert got.p_worse == pytest.approx(left, abs=1e-6)
    assert got.p_equivalent == pytest.approx(middle, abs=1e-6)
    assert got.p_better == pytest.approx(right, abs=1e-6)
    assert got.p_worse + got.p_equivalent + got.p_better == pytest.approx(1.0, abs=1e-9)


def test_probabilities_equal_an_independent_student_t():
    diff = np.array([0.031, 0.012, 0.044, 0.020, 0.027, 0.018])
    ratio, rope = 0.27, 0.01
    j = len(diff)
    scale = np.sqrt((1 / j + ratio) * diff.var(ddof=1))
    t = stats.t(df=j - 1, loc=diff.mean(), scale=scale)
    got = verdicts.verdict(diff, ratio, rope, higher_is_better=True)
    assert got.p_better == pytest.approx(t.sf(rope), abs=1e-9)
    assert got.p_worse == pytest.approx(t.cdf(-rope), abs=1e-9)
    lower = verdicts.verdict(diff, ratio, rope, higher_is_better=False)  # e.g. NLL: a positive difference is worse
    assert (lower.p_better, lower.p_worse) == pytest.approx((got.p_worse, got.p_better), abs=1e-12)


def test_verdict_words():
    assert verdicts.word(0.01, 0.02, 0.97) == "better"
    assert verdicts.word(0.96, 0.03, 0.01) == "worse"
    assert verdicts.word(0.02, 0.96, 0.02) == "equivalent"
    assert verdicts.word(0.10, 0.50, 0.40) == "undecided"
    many = np.random.default_rng(0).normal(0.0, 0.001, 40)  # tight around 0: practically equivalent
    assert verdicts.verdict(many, 0.0, 0.01, True).word == "equivalent"
    big = np.array([0.10, 0.12, 0.11, 0.13, 0.09])
    assert verdicts.verdict(big, 0.25, 0.01, True).word == "better"
    assert verdicts.verdict(big, 0.25, 0.01, False).word == "worse"
    assert verdicts.verdict(np.array([0.05, -0.04, 0.10, -0.08, 0.0]), 0.25, 0.01, True).word == "undecided"


def test_undefined_posterior_is_undecided_never_no_difference():
    same = pd.DataFrame({"fold": [0, 1, 2], "repeat": 0, "diff": 0.0, "seeds": 1})
    table = verdicts.verdicts([Comparison("test_accuracy", "b", "m", "ce", same, 0.25)])
    assert table.loc[0, "verdict"] == "undecided" and table.loc[0, "note"] == "zero variance"
    assert np.isnan(table.loc[0, "p_better"])


def test_rope_is_in_percentage_points_for_percent_metrics_only():
    assert verdicts.rope_for("test_macro_f1", 1.0) == pytest.approx(0.01)
    assert verdicts.rope_for("test_nll", 1.0) == 0.0


def test_pooled_verdict_averages_backbones_per_block():
    a = pd.DataFrame({"fold": [0, 1, 2, 3], "repeat": 0, "diff": [0.01, 0.02, 0.03, 0.05], "seeds": 2})
    b = pd.DataFrame({"fold": [0, 1, 2], "repeat": 0, "diff": [0.03, 0.00, 0.01], "seeds": 2})  # fold 3 missing
    found = [Comparison("test_accuracy", "r18", "m", "ce", a, 0.25), Comparison("test_accuracy", "vit", "m", "ce", b, 0.25)]
    table = verdicts.verdicts(found, rope_pp=1.0)
    pooled = table[table["backbone"] == verdicts.POOLED].iloc[0]
    mean = np.mean([0.02, 0.01, 0.02])
    assert pooled["blocks"] == 3 and pooled["mean_diff"] == pytest.approx(mean)
    expected = verdicts.verdict(np.array([0.02, 0.01, 0.02]), 0.25, 0.01, True)
    assert pooled["p_better"] == pytest.approx(expected.p_better)


def _runs(values: dict[tuple[str, int, int], float]) -> pd.DataFrame:
    rows = [{"row": r, "backbone": "b", "fold": f, "repeat": 0, "seed": s, "test_accuracy": v, "n_train": 400,
             "n_test": 100} for (r, f, s), v in values.items()]
    return pd.DataFrame(rows)


def test_seeds_of_a_split_are_averaged_into_one_block_matched_by_seed():
    values = {("m", 0, 0): 0.80, ("m", 0, 1): 0.84, ("ce", 0, 0): 0.78, ("ce", 0, 1): 0.79,
              ("m", 1, 0): 0.70, ("m", 1, 1): 0.74, ("m", 1, 2): 0.90, ("ce", 1, 0): 0.71, ("ce", 1, 1): 0.70}
    blocks = pairs(_runs(values), "ce", "test_accuracy", "b", "m")
    assert list(blocks["fold"]) == [0, 1] and list(blocks["seeds"]) == [2, 2]  # seed 2 of fold 1 has no baseline
    assert blocks["diff"].to_list() == pytest.approx([(0.02 + 0.05) / 2, (-0.01 + 0.04) / 2])


def test_coverage_of_the_corrected_interval_with_seed_blocks_and_not_with_seeds_pooled():
    """Differences = split effect (equicorrelated over the folds as the Nadeau–Bengio correction assumes, rho =
    r / (1 + r), r = n_test / n_train) + seed noise within the split; true mean 0. Nominal 95% intervals: averaging
    the seeds of a split covers >= 93%; treating each seed as its own block (the old pooling) falls short."""
    folds, seeds, sd_split, sd_seed, n = 5, 5, 5.0, 2.0, 1500
    ratio = 1 / (folds - 1)
    rho = ratio / (1 + ratio)
    rng = np.random.default_rng(2026)
    split = rng.normal(0, sd_split * np.sqrt(rho), (n, 1)) + rng.normal(0, sd_split * np.sqrt(1 - rho), (n, folds))
    runs = split[:, :, None] + rng.normal(0, sd_seed, (n, folds, seeds))

    def covers(diff: np.ndarray) -> bool:
        _, _, low, high = corrected_ttest(diff, ratio)
        return low <= 0 <= high

    blocked = np.mean([covers(d) for d in runs.mean(axis=2)])
    pooled = np.mean([covers(d) for d in runs.reshape(n, -1)])
    assert blocked >= 0.93
    assert pooled < 0.90 and blocked - pooled > 0.05
