"""Variance components (method of moments) against statsmodels' REML fit, and the power / runs-needed arithmetic
against scipy's noncentral t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from benchmark.report import power
from benchmark.report.variance import components


def test_components_equal_reml_on_balanced_data():
    rng = np.random.default_rng(7)
    splits, seeds = 12, 4
    values = (rng.normal(0, 0.05, splits)[:, None] + rng.normal(0.8, 0.02, (splits, seeds))).ravel()
    groups = np.repeat(np.arange(splits), seeds)
    got = components(values, groups)
    frame = pd.DataFrame({"y": values * 100, "g": groups})  # in pp: the optimiser's tolerances suit that scale
    fit = smf.mixedlm("y ~ 1", frame, groups="g").fit(reml=True)
    assert got.split_var == pytest.approx(float(fit.cov_re.iloc[0, 0]) / 1e4, rel=1e-4)
    assert got.seed_var == pytest.approx(float(fit.scale) / 1e4, rel=1e-4)
    assert (got.splits, got.runs, got.seeds_per_split) == (splits, splits * seeds, seeds)


def test_components_recover_known_values_unbalanced():
    rng = np.random.default_rng(3)
    sizes = rng.integers(2, 6, 4000)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.normal(0, 3.0, len(sizes))[groups] + rng.normal(0, 2.0, len(groups))
    got = components(values, groups)
    assert got.split_var == pytest.approx(9.0, rel=0.05) and got.seed_var == pytest.approx(4.0, rel=0.05)


def test_one_seed_per_split_cannot_separate_the_seed_part():
    values = np.array([0.7, 0.8, 0.75, 0.9])
    got = components(values, np.arange(4))
    assert np.isnan(got.seed_var) and got.split_var == pytest.approx(values.var(ddof=1))


def test_negative_split_estimate_is_zero():
    values = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.5])  # every split has the same mean
    got = components(values, np.array([0, 0, 1, 1, 2, 2]))
    assert got.split_var == 0.0 and got.seed_var > 0


def _noncentral_power(delta: float, se: float, df: int, one_sided: bool = False) -> float:
    crit = stats.t.ppf(0.95 if one_sided else 0.975, df)
    dist = stats.nct(df, delta / se)
    return float(dist.sf(crit) + (0 if one_sided else dist.cdf(-crit)))


@pytest.mark.parametrize("design", [power.Design(5, 1, 1), power.Design(5, 2, 3), power.Design(10, 1, 5)])
def test_detectable_difference_has_about_80_percent_power(design):
    split, seed, ratio = 0.03**2, 0.02**2, 1 / (design.folds - 1)
    delta = power.detectable(split, seed, ratio, design)
    se = np.sqrt((1 / design.blocks + ratio) * (split + seed / design.seeds))
    assert se == pytest.approx(power.standard_error(split, seed, ratio, design))
    assert 0.78 <= _noncentral_power(delta, se, design.blocks - 1) <= 0.84


def test_needed_design_is_the_cheapest_that_detects_the_target():
    split, seed, ratio, target = 0.01**2, 0.03**2, 0.25, 0.05
    found = power.needed(split, seed, ratio, 5, target)
    assert found is not None and power.detectable(split, seed, ratio, found) <= target
    cheaper = [power.Design(5, r, s) for r in range(1, 21) for s in range(1, 21) if r * s < found.repeats * found.seeds]
    assert all(power.detectable(split, seed, ratio, d) > target for d in cheaper)


def test_below_the_floor_nothing_is_enough():
    split, ratio = 0.05**2, 0.25
    floor = power.floor(split, ratio)
    assert power.needed(split, 0.0, ratio, 5, 0.9 * floor) is None
    assert power.detectable(split, 0.0, ratio, power.Design(5, 20, 20)) > floor
    assert power.needed(split, 0.0, ratio, 5, 1.3 * floor) is not None


def test_summary_line_names_the_design_runs_and_hours():
    variance = pd.DataFrame([{"metric": "test_accuracy", "backbone": "b", "method": "m", "of": "difference to ce",
                              "sd_split": 0.004, "sd_seed": 0.03}])
    budget = power.Budget(runs_per_unit=6, run_s=180.0, done=30)
    lines = power.summary(variance, {("test_accuracy", "b", "m"): 0.25}, power.Design(5, 1, 1), budget, 2.0, 1.0)
    found = power.needed(0.004**2, 0.03**2, 0.25, 5, 0.02)
    runs = found.blocks * found.seeds * 6
    assert len(lines) == 1 and f"To detect ±2 pp: {found.text()}, {runs} runs" in lines[0]
    assert power.format_duration(runs * 180.0) in lines[0]
