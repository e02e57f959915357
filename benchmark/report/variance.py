"""Where the spread comes from: a one-way random-effects ANOVA (method of moments) of runs grouped by split,
splitting the variance into a between-splits and a between-seeds-within-a-split component."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.report.columns import BLOCK_KEYS
from benchmark.report.selection import Rows
from benchmark.report.stats import Comparison, seed_pairs

ESTIMATOR = "one-way random-effects ANOVA, method of moments (negative split estimates set to 0)"


@dataclass(frozen=True)
class Components:
    """Variance components of one quantity: between splits and between seeds within a split (NaN: not measurable)."""

    splits: int
    runs: int
    split_var: float
    seed_var: float

    @property
    def seeds_per_split(self) -> float:
        return self.runs / self.splits if self.splits else np.nan

    @property
    def block_var(self) -> float:
        """Variance of one block (a split's seeds averaged) at the measured seeds per split."""
        seed = 0.0 if np.isnan(self.seed_var) else self.seed_var
        return self.split_var + seed / self.seeds_per_split


def components(values: np.ndarray, groups: np.ndarray) -> Components:
    """Method-of-moments estimates from values and their split labels; with one run per split the seed part cannot
    be told apart: seed_var is NaN and split_var holds the whole variance (an upper bound of the split part)."""
    values = np.asarray(values, dtype=np.float64)
    _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    k, n = len(sizes), len(values)
    if k < 1 or n < 2:
        return Components(k, n, np.nan, np.nan)
    means = np.bincount(inverse, weights=values) / sizes
    if n == k:
        return Components(k, n, float(np.var(values, ddof=1)), np.nan)
    within = float(np.sum((values - means[inverse]) ** 2) / (n - k))
    if k < 2:
        return Components(k, n, np.nan, within)
    between = float(np.sum(sizes * (means - values.mean()) ** 2) / (k - 1))
    n0 = (n - np.sum(sizes**2) / n) / (k - 1)
    return Components(k, n, max(0.0, (between - within) / n0), within)


def _split_labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[BLOCK_KEYS].astype(str).agg("/".join, axis=1).to_numpy()


def _row(metric: str, backbone: str, method: str, of: str, c: Components) -> dict:
    total = c.split_var + (0.0 if np.isnan(c.seed_var) else c.seed_var)
    return {
        "metric": metric, "backbone": backbone, "method": method, "of": of, "splits": c.splits, "runs": c.runs,
        "seeds_per_split": c.seeds_per_split, "sd_split": np.sqrt(c.split_var), "sd_seed": np.sqrt(c.seed_var),
        "seed_share": c.seed_var / total if total > 0 else np.nan,
    }


def table(rows: Rows, metrics: list[str], backbones: list[str], found: Iterable[Comparison]) -> pd.DataFrame:
    """Per metric, backbone and fair row: the components of its score; per comparison: those of its difference to
    the baseline (seeds matched), which the power analysis uses."""
    fair = rows.fair_frame()
    done = fair[fair["status"] == "done"]
    out = []
    for metric in metrics:
        for backbone in backbones:
            for row in rows.fair.values():
                runs = done[(done["row"] == row) & (done["backbone"] == backbone) & done[metric].notna()]
                if len(runs):
                    comp = components(runs[metric].to_numpy(), _split_labels(runs))
                    out.append(_row(metric, backbone, row, "score", comp))
    for c in found:
        runs = seed_pairs(done, c.baseline, c.metric, c.backbone, c.method)
        if len(runs):
            comp = components(runs["diff"].to_numpy(), _split_labels(runs))
            out.append(_row(c.metric, c.backbone, c.method, f"difference to {c.baseline}", comp))
    return pd.DataFrame(out)
