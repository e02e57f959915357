"""Significance tests: each method's fair row against the baseline, and Friedman + Nemenyi across all methods."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from scipy import stats
from statsmodels.stats.multitest import multipletests

from benchmark.report.columns import BLOCK_KEYS, GROUP_KEYS, PAIR_KEYS, info
from benchmark.report.selection import Rows

CONFIDENCE = 0.95
NOISE = 1e-12  # differences within this are float noise (metrics are fractions or nats)


def _denoised(diff: np.ndarray) -> np.ndarray:
    """The differences with float noise (|d| <= NOISE) set to exactly 0."""
    return np.where(np.abs(diff) <= NOISE, 0.0, diff)


def zero_variance(diff: np.ndarray) -> bool:
    """True when two or more differences are all equal (up to float noise): s²(d) = 0."""
    return len(diff) >= 2 and float(np.ptp(diff)) <= NOISE


def corrected_ttest(diff: np.ndarray, test_train_ratio: float) -> tuple[float, float, float, float]:
    """Nadeau–Bengio corrected resampled t-test: (t, p two-sided, CI low, CI high) of the mean difference.

    All NaN for fewer than 2 pairs and for zero variance (all differences equal): the test is undefined there,
    it does not give t = ±inf, p = 0 and a zero-width interval.
    """
    j = len(diff)
    if j < 2 or not np.isfinite(test_train_ratio) or zero_variance(diff):
        return (np.nan,) * 4
    mean = float(np.mean(diff))
    se = np.sqrt((1.0 / j + test_train_ratio) * np.var(diff, ddof=1))
    t = mean / se
    p = float(2 * stats.t.sf(abs(t), df=j - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df=j - 1) * se
    return float(t), p, mean - half, mean + half


def _wilcoxon(diff: np.ndarray) -> tuple[float, float]:
    """Wilcoxon signed-rank test (zero differences dropped); all differences 0: W = 0, p = 1 (no difference at all:
    every sign flip gives the same statistic)."""
    if len(diff) < 1:
        return np.nan, np.nan
    diff = _denoised(diff)
    if np.all(diff == 0):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.wilcoxon(diff)
    return float(result.statistic), float(result.pvalue)


def pair_note(diff: np.ndarray) -> str:
    """Why a pair of tests gives no (or a limiting) answer; empty when both are ordinary."""
    j = len(diff)
    if j < 2:
        return f"{j} pair(s): the t-test needs at least 2"
    if np.all(_denoised(diff) == 0):
        return "identical on every pair (all differences 0): t-test undefined (zero variance); Wilcoxon p = 1"
    if zero_variance(diff):
        return f"all {j} differences equal: t-test undefined (zero variance); Wilcoxon: every difference has the same sign"
    return ""


def _holm(p: pd.Series) -> pd.Series:
    out = pd.Series(np.nan, index=p.index)
    ok = p.notna()
    if ok.any():
        out[ok] = multipletests(p[ok].to_numpy(), method="holm")[1]
    return out


@contextmanager
def _frozen_gc() -> Iterator[None]:
    """statsmodels' Holm calls gc.collect(); freezing the existing objects keeps that cheap."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def seed_pairs(done: pd.DataFrame, baseline: str, metric: str, backbone: str, row: str) -> pd.DataFrame:
    """Done runs of `row` and of the baseline on the same (fold, repeat, seed) of one backbone, with their diff
    (and the row's n_train and n_test, where recorded)."""
    done = done[(done["backbone"] == backbone) & done[metric].notna()]
    extra = [c for c in ("n_train", "n_test") if c in done]
    left = done[done["row"] == row][PAIR_KEYS + [metric] + extra]
    right = done[done["row"] == baseline][PAIR_KEYS + [metric]]
    merged = left.merge(right, on=PAIR_KEYS, suffixes=("", "_baseline")).sort_values(PAIR_KEYS)
    return merged.assign(diff=merged[metric] - merged[f"{metric}_baseline"])


def pairs(done: pd.DataFrame, baseline: str, metric: str, backbone: str, row: str) -> pd.DataFrame:
    """Paired blocks of `row` against the baseline on one backbone: runs matched on (fold, repeat, seed), then the
    seeds of each (fold, repeat) averaged into one block (runs that share a split are not independent pairs).

    Columns: fold, repeat, `metric`, `metric`_baseline, diff (block means), seeds (matched seeds per block),
    n_train and n_test (block means, where recorded)."""
    merged = seed_pairs(done, baseline, metric, backbone, row)
    columns = [metric, f"{metric}_baseline", "diff", *[c for c in ("n_train", "n_test") if c in merged]]
    blocks = merged.groupby(BLOCK_KEYS, sort=True)[columns].mean()
    blocks["seeds"] = merged.groupby(BLOCK_KEYS, sort=True).size()
    return blocks.reset_index()


@dataclass(frozen=True, eq=False)
class Comparison:
    """One method's fair row against the baseline on one backbone and metric: its paired blocks."""

    metric: str
    backbone: str
    method: str
    baseline: str
    blocks: pd.DataFrame  # see `pairs`
    ratio: float  # n_test / n_train (Nadeau–Bengio), NaN where not recorded

    @property
    def diff(self) -> np.ndarray:
        return self.blocks["diff"].to_numpy(dtype=np.float64)


def comparisons(rows: Rows, metrics: list[str], backbones: list[str]) -> Iterator[Comparison]:
    """Every (metric, backbone, method) comparison against the baseline, in report order."""
    if rows.baseline is None:
        return
    others = [r for r in rows.fair.values() if r != rows.baseline]
    fair = rows.fair_frame()
    done = fair[fair["status"] == "done"]
    for metric in metrics:
        for backbone in backbones:
            for row in others:
                paired = pairs(done, rows.baseline, metric, backbone, row)
                ratio = float((paired["n_test"] / paired["n_train"]).mean()) if "n_train" in paired else np.nan
                yield Comparison(metric, backbone, row, rows.baseline, paired, ratio)


def pairwise(rows: Rows, metrics: list[str], backbones: list[str]) -> pd.DataFrame:
    """Per metric, backbone and method: mean difference to the baseline, corrected t-test, Wilcoxon, Holm."""
    records = []
    for c in comparisons(rows, metrics, backbones):
        paired, metric, diff, ratio = c.blocks, c.metric, c.diff, c.ratio
        t, p_t, low, high = corrected_ttest(diff, ratio)
        w, p_w = _wilcoxon(diff)
        records.append({
            "metric": metric, "backbone": c.backbone, "method": c.method, "baseline": c.baseline,
            "n_pairs": len(diff), "mean": paired[metric].mean(), "mean_baseline": paired[f"{metric}_baseline"].mean(),
            "mean_diff": diff.mean() if len(diff) else np.nan, "ci_low": low, "ci_high": high,
            "test_train_ratio": ratio, "t": t, "p_t": p_t, "wilcoxon_w": w, "p_wilcoxon": p_w,
            "zero_variance": zero_variance(diff), "note": pair_note(diff),
        })
    table = pd.DataFrame(records)
    if table.empty:
        return table
    groups = table.groupby(["metric", "backbone"], sort=False)
    with _frozen_gc():
        table["p_t_holm"] = groups["p_t"].transform(_holm)
        table["p_wilcoxon_holm"] = groups["p_wilcoxon"].transform(_holm)
    return table


@dataclass
class Friedman:
    """Friedman test over complete blocks (backbone x fold x repeat, seeds averaged) and the Nemenyi post-hoc."""

    metric: str
    statistic: float
    p: float
    n_blocks: int
    ranks: pd.Series
    nemenyi: pd.DataFrame


def block_matrix(rows: Rows, metric: str) -> pd.DataFrame:
    """Blocks (backbone, fold, repeat) x fair rows of `metric`: the seeds every row finished, averaged per block;
    complete blocks only."""
    fair = rows.fair_frame()
    done = fair[fair["status"] == "done"]
    matrix = done.pivot_table(index=GROUP_KEYS, columns="row", values=metric, aggfunc="mean")
    order = [r for r in rows.fair.values() if r in matrix.columns]
    complete = matrix[order].dropna()
    return complete.groupby(level=["backbone", *BLOCK_KEYS], sort=True).mean()


def friedman(rows: Rows, metric: str) -> Friedman | None:
    """None when fewer than 3 methods or 2 complete blocks."""
    matrix = block_matrix(rows, metric)
    if matrix.shape[1] < 3 or matrix.shape[0] < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.friedmanchisquare(*matrix.to_numpy().T)
        nemenyi = sp.posthoc_nemenyi_friedman(matrix.to_numpy())
    nemenyi.index = nemenyi.columns = matrix.columns
    ranks = matrix.rank(axis=1, ascending=not info(metric).higher_is_better).mean()
    return Friedman(metric, float(result.statistic), float(result.pvalue), matrix.shape[0], ranks, nemenyi)
