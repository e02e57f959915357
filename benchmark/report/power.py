"""What a decision costs: from the measured variance components of the differences to the baseline, the smallest
difference the design detects (80% power, 5% two-sided) and the repeats x seeds a named difference needs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.estimate import format_duration
from benchmark.report.columns import info

ALPHA = 0.05
POWER = 0.80
DEFAULT_DECIDE_PP = 2.0
MAX_REPEATS = 20
MAX_SEEDS = 20


@dataclass(frozen=True)
class Design:
    """folds x repeats x seeds of one experiment."""

    folds: int
    repeats: int
    seeds: int

    @property
    def blocks(self) -> int:
        return self.folds * self.repeats

    def text(self) -> str:
        repeats = f" × {self.repeats} repeats" if self.repeats > 1 else ""
        return f"{self.folds} folds{repeats} × {self.seeds} seed{'s' if self.seeds > 1 else ''}"


def standard_error(split_var: float, seed_var: float, ratio: float, design: Design) -> float:
    """Nadeau–Bengio corrected standard error of the mean difference: blocks = folds x repeats, each the mean of
    `seeds` runs, so a block varies by split_var + seed_var / seeds."""
    return float(np.sqrt((1.0 / design.blocks + ratio) * (split_var + seed_var / design.seeds)))


@cache
def _quantiles(df: int, one_sided: bool) -> float:
    level = 1 - ALPHA if one_sided else 1 - ALPHA / 2
    return float(stats.t.ppf(level, df) + stats.t.ppf(POWER, df))


def detectable(split_var: float, seed_var: float, ratio: float, design: Design, one_sided: bool = False) -> float:
    """Smallest true difference found with 80% power by the corrected t-test at 5% (two-sided, or one-sided as a
    95% verdict beyond a ROPE needs)."""
    if design.blocks < 2:
        return np.nan
    return _quantiles(design.blocks - 1, one_sided) * standard_error(split_var, seed_var, ratio, design)


def needed(split_var: float, seed_var: float, ratio: float, folds: int, target: float,
           one_sided: bool = False) -> Design | None:
    """The design with the fewest runs (folds fixed; repeats, seeds <= 20) that detects `target`; None if none does."""
    best = None
    for repeats in range(1, MAX_REPEATS + 1):
        for seeds in range(1, MAX_SEEDS + 1):
            design = Design(folds, repeats, seeds)
            if best is not None and repeats * seeds >= best.repeats * best.seeds:
                break
            if detectable(split_var, seed_var, ratio, design, one_sided) <= target:
                best = design
                break
    return best


def floor(split_var: float, ratio: float) -> float:
    """What no number of repeats or seeds gets below with these folds: the corrected variance keeps ratio·split_var."""
    return float((stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)) * np.sqrt(ratio * split_var))


@dataclass(frozen=True)
class Budget:
    """How runs translate into time here: runs per (fold, repeat, seed) of the experiment and seconds per run."""

    runs_per_unit: float
    run_s: float
    done: int


def budget_of(results: pd.DataFrame) -> Budget:
    """From the experiment's records: all runs per distinct (fold, repeat, seed), mean measured wall time per run."""
    units = results[["fold", "repeat", "seed"]].drop_duplicates().shape[0]
    wall = pd.to_numeric(results.get("wall_time_s", pd.Series(dtype=float)), errors="coerce")
    wall = wall[results["status"] == "done"].dropna()
    return Budget(len(results) / max(units, 1), float(wall.mean()) if len(wall) else np.nan, len(results))


def _cost(design: Design | None, budget: Budget) -> str:
    if design is None:
        return ""
    runs = int(round(design.blocks * design.seeds * budget.runs_per_unit))
    time = f", ≈ {format_duration(runs * budget.run_s)} on one worker here" if np.isfinite(budget.run_s) else ""
    return f"{design.text()}, {runs} runs{time}"


def table(variance: pd.DataFrame, ratios: dict, design: Design, budget: Budget, decide_pp: float,
          rope_pp: float) -> pd.DataFrame:
    """Per comparison (rows 'difference to ...' of the variance table): detectable difference now, runs needed."""
    diffs = variance[variance["of"].str.startswith("difference")]
    out = []
    for _, r in diffs.iterrows():
        scale = info(r["metric"]).scale()
        split = float(r["sd_split"]) ** 2
        seed = 0.0 if np.isnan(r["sd_seed"]) else float(r["sd_seed"]) ** 2
        ratio = ratios.get((r["metric"], r["backbone"], r["method"]), np.nan)
        if not np.isfinite(ratio) or not np.isfinite(split) or scale != 100.0:
            continue
        target, beyond = decide_pp / scale, (decide_pp - rope_pp) / scale
        test = needed(split, seed, ratio, design.folds, target)
        rope = needed(split, seed, ratio, design.folds, beyond, one_sided=True) if beyond > 0 else None
        out.append({
            "metric": r["metric"], "backbone": r["backbone"], "method": r["method"], "sd_split": r["sd_split"],
            "sd_seed": r["sd_seed"], "seed_measured": not np.isnan(r["sd_seed"]), "test_train_ratio": ratio,
            "design": design.text(), "detectable_now": detectable(split, seed, ratio, design),
            "floor": floor(split, ratio), "decide": target,
            "needed_to_detect": _cost(test, budget) or "not reachable by repeats/seeds",
            "needed_for_verdict": _cost(rope, budget) or ("not reachable by repeats/seeds" if beyond > 0 else
                                                            "difference inside the ROPE"),
        })
    return pd.DataFrame(out)


def summary(variance: pd.DataFrame, ratios: dict, design: Design, budget: Budget, decide_pp: float,
            rope_pp: float, which: str = "current") -> list[str]:
    """One line per metric for the typical comparison (median variance components of the differences); `which`
    names the design (current, planned)."""
    lines = []
    diffs = variance[variance["of"].str.startswith("difference")]
    for metric, group in diffs.groupby("metric", sort=False):
        scale = info(metric).scale()
        ratio = float(np.nanmedian([ratios.get((metric, b, m), np.nan) for b, m in zip(group["backbone"], group["method"])]))
        split = float(np.nanmedian(group["sd_split"] ** 2))
        measured = group["sd_seed"].notna().any()
        seed = float(np.nanmedian(group["sd_seed"] ** 2)) if measured else 0.0
        if scale != 100.0 or not np.isfinite(ratio) or not np.isfinite(split):
            continue
        now = detectable(split, seed, ratio, design) * scale
        test = needed(split, seed, ratio, design.folds, decide_pp / scale)
        beyond = (decide_pp - rope_pp) / scale
        rope = needed(split, seed, ratio, design.folds, beyond, one_sided=True) if beyond > 0 else None
        label = info(metric).label
        line = (f"{label}: the {which} design ({design.text()}) detects a difference of ±{now:.1f} pp (80% power, "
                f"5% two-sided; typical comparison: SD between splits {np.sqrt(split) * scale:.1f} pp, between seeds "
                + (f"{np.sqrt(seed) * scale:.1f} pp" if measured else "not measured (one seed per split)") + "). ")
        line += (f"To detect ±{decide_pp:g} pp: {_cost(test, budget)}" if test else
                 f"±{decide_pp:g} pp cannot be detected with {design.folds} folds by more repeats or seeds "
                 f"(floor ±{floor(split, ratio) * scale:.1f} pp from the corrected variance)")
        if beyond > 0:
            line += (f"; for a better/worse verdict beyond the ROPE ±{rope_pp:g} pp at a true ±{decide_pp:g} pp: "
                     + (_cost(rope, budget) if rope else "not reachable by repeats/seeds"))
        lines.append(line + ".")
    return lines
