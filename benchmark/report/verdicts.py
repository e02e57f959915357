"""Verdicts with a region of practical equivalence (ROPE): the correlated Bayesian t-test (Benavoli et al. 2017,
via baycomp) of each method against the baseline, per backbone and pooled over the backbones."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from baycomp.single import Posterior
from scipy import stats

from benchmark.report.columns import BLOCK_KEYS, info
from benchmark.report.stats import Comparison, zero_variance

DECISIVE = 0.95  # a verdict needs this much posterior probability
DEFAULT_ROPE_PP = 1.0  # ± percentage points for accuracy/F1-type (percent) metrics
POOLED = "all backbones (pooled)"
WORDS = ("better", "equivalent", "worse", "undecided")


@dataclass(frozen=True)
class Verdict:
    """Posterior probabilities that the method is worse / practically equivalent / better, and the one word."""

    p_worse: float
    p_equivalent: float
    p_better: float
    word: str


def rope_for(metric: str, rope_pp: float) -> float:
    """The ROPE half-width in the metric's own units: `rope_pp` percentage points for percent metrics, 0 otherwise."""
    return rope_pp / 100.0 if info(metric).percent else 0.0


def posterior(diff: np.ndarray, ratio: float) -> tuple[float, float, int] | None:
    """(mean, variance, df) of the correlated t posterior of the mean difference: Student t with J - 1 degrees of
    freedom and the Nadeau–Bengio corrected variance (1/J + n_test/n_train)·s², flat prior; None where undefined
    (fewer than 2 blocks, zero variance, unknown ratio)."""
    j = len(diff)
    if j < 2 or not np.isfinite(ratio) or zero_variance(diff):
        return None
    return float(np.mean(diff)), float((1.0 / j + ratio) * np.var(diff, ddof=1)), j - 1


def word(p_worse: float, p_equivalent: float, p_better: float) -> str:
    """better / equivalent / worse when that outcome has >= 95% posterior probability; undecided otherwise."""
    for name, p in (("better", p_better), ("equivalent", p_equivalent), ("worse", p_worse)):
        if p >= DECISIVE:
            return name
    return "undecided"


def verdict(diff: np.ndarray, ratio: float, rope: float, higher_is_better: bool) -> Verdict | None:
    """The verdict on differences (method - baseline) per block; None where the posterior is undefined."""
    post = posterior(diff, ratio)
    if post is None:
        return None
    probs = Posterior(*post, rope=rope).probs()
    left, middle, right = probs if rope > 0 else (probs[0], 0.0, probs[1])
    worse, better = (left, right) if higher_is_better else (right, left)
    return Verdict(float(worse), float(middle), float(better), word(worse, middle, better))


def pooled_blocks(group: list[Comparison]) -> tuple[np.ndarray, float, int]:
    """Differences averaged over the backbones within each (fold, repeat) that every backbone has: a fixed-effects
    pooling (the mean effect over these backbones); the mean n_test/n_train; the number of backbones."""
    frames = [c.blocks.set_index(BLOCK_KEYS)["diff"].rename(c.backbone) for c in group if len(c.blocks)]
    if not frames:
        return np.empty(0), np.nan, 0
    wide = pd.concat(frames, axis=1).dropna()
    ratio = float(np.nanmean([c.ratio for c in group])) if any(np.isfinite(c.ratio) for c in group) else np.nan
    return wide.mean(axis=1).to_numpy(dtype=np.float64), ratio, wide.shape[1]


def _record(metric: str, backbone: str, method: str, baseline: str, diff: np.ndarray, ratio: float, rope: float,
            seeds: float) -> dict:
    higher = info(metric).higher_is_better
    result = verdict(diff, ratio, rope, bool(higher)) if higher is not None else None
    post = posterior(diff, ratio)
    low, high = (np.nan, np.nan) if post is None else stats.t.interval(
        DECISIVE, post[2], loc=post[0], scale=np.sqrt(post[1]))
    why = ("" if result else "metric has no better direction" if higher is None else
           f"{len(diff)} block(s)" if len(diff) < 2 else "zero variance" if zero_variance(diff) else "no n_test/n_train")
    return {
        "metric": metric, "backbone": backbone, "method": method, "baseline": baseline, "blocks": len(diff),
        "seeds_per_block": seeds, "mean_diff": float(np.mean(diff)) if len(diff) else np.nan,
        "cred_low": float(low), "cred_high": float(high), "rope": rope,
        "p_worse": result.p_worse if result else np.nan, "p_equivalent": result.p_equivalent if result else np.nan,
        "p_better": result.p_better if result else np.nan, "verdict": result.word if result else "undecided",
        "note": why,
    }


def verdicts(found: Iterable[Comparison], rope_pp: float = DEFAULT_ROPE_PP) -> pd.DataFrame:
    """One row per (metric, backbone, method) and one pooled row per (metric, method) when there are >= 2 backbones."""
    records, groups = [], {}
    for c in found:
        rope = rope_for(c.metric, rope_pp)
        seeds = float(c.blocks["seeds"].mean()) if len(c.blocks) else np.nan
        records.append(_record(c.metric, c.backbone, c.method, c.baseline, c.diff, c.ratio, rope, seeds))
        groups.setdefault((c.metric, c.method, c.baseline), []).append(c)
    for (metric, method, baseline), group in groups.items():
        if len(group) < 2:
            continue
        diff, ratio, n = pooled_blocks(group)
        row = _record(metric, POOLED, method, baseline, diff, ratio, rope_for(metric, rope_pp), np.nan)
        row["note"] = (row["note"] + "; " if row["note"] else "") + f"{n} backbones averaged per block"
        records.append(row)
    return pd.DataFrame(records)
