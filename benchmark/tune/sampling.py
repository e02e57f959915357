"""Draw trial k of a study from trials 0..k-1 with Optuna, so the same history always gives the same values.

Each draw builds fresh in-memory studies, replays the finished trials into them and asks once, with samplers
seeded by (tune.seed, repeat, fold, seed, k) and the key: a sweep killed between trials resumes to exactly the
values an uninterrupted one draws, and every method of a fold uses the same sampler seeds (paired tuning).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from methods.space import Choice, Dimension, IntUniform, LogUniform, Uniform

SIGNIFICANT_DIGITS = 6  # of a drawn continuous value: what a trial uses and what its run id hashes
MAX_REDRAWS = 20  # draws tried to avoid repeating a finished trial (a small space may have no new point left)


@dataclass(frozen=True)
class Finished:
    """A finished trial as the sampler sees it: its values and score (None: the run failed)."""

    values: dict[str, Any]
    score: float | None


def _seed_of(*parts: object) -> int:
    """A 32-bit seed that is a fixed function of `parts` (SHA-256, not Python's per-process salted hash)."""
    text = ":".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


def trial_seed(base: int, repeat: int, fold: int, seed: int, trial: int) -> int:
    """The sampler seed of one trial: the same for every method of a (repeat, fold, seed)."""
    return _seed_of(base, repeat, fold, seed, trial)


def startup_trials(trials: int) -> int:
    """TPE's random start: a third of the budget, at least 2 (Optuna's default of 10 would make small budgets random)."""
    return max(2, trials // 3)


def _distribution(dim: Dimension):
    import optuna

    if isinstance(dim, Choice):
        return optuna.distributions.CategoricalDistribution(list(dim.values))
    if isinstance(dim, IntUniform):
        return optuna.distributions.IntDistribution(dim.low, dim.high)
    return optuna.distributions.FloatDistribution(dim.low, dim.high, log=isinstance(dim, LogUniform))


def _sampler(kind: str, seed: int, trials: int):
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials))


def _optuna_draw(dims: dict[str, Dimension], history: list[Finished], kind: str, seed: int, trials: int,
                 maximize: bool) -> dict[str, Any]:
    """One Optuna study per dimension (TPE's independent sampling), seeded by the trial seed and the key, so a
    key shared by every method (train.optimizer.lr) gets the same random-phase values for each of them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    values = {}
    for key, dim in dims.items():
        distribution = {key: _distribution(dim)}
        key_seed = _seed_of(seed, key)
        study = optuna.create_study(direction="maximize" if maximize else "minimize",
                                    sampler=_sampler(kind, key_seed, trials))
        for past in history:
            finite = past.score is not None and math.isfinite(past.score)
            study.add_trial(optuna.trial.create_trial(
                params={key: past.values[key]}, distributions=distribution, value=past.score if finite else None,
                state=optuna.trial.TrialState.COMPLETE if finite else optuna.trial.TrialState.FAIL))
        values[key] = study.ask(distribution).params[key]
    return values


def grid_points(dims: dict[str, Dimension], trials: int) -> list[dict[str, Any]]:
    """The grid: every choice, and n evenly (log-)spaced points per range, n = ⌈(trials ÷ choice combinations)^(1/ranges)⌉
    (at least 2), so the grid has about `trials` points; sklearn's ParameterGrid order."""
    from sklearn.model_selection import ParameterGrid

    ranges = sum(not isinstance(dim, Choice) for dim in dims.values())
    combos = math.prod(len(dim.values) for dim in dims.values() if isinstance(dim, Choice))
    per_range = max(2, math.ceil((trials / combos) ** (1 / ranges) - 1e-9)) if ranges else 1
    axes = {}
    for key, dim in dims.items():
        if isinstance(dim, Choice):
            axes[key] = list(dim.values)
        elif isinstance(dim, IntUniform):
            axes[key] = sorted({int(round(v)) for v in np.linspace(dim.low, dim.high, per_range)})
        elif isinstance(dim, LogUniform):
            axes[key] = [float(v) for v in np.geomspace(dim.low, dim.high, per_range)]
        elif isinstance(dim, Uniform):
            axes[key] = [float(v) for v in np.linspace(dim.low, dim.high, per_range)]
    return list(ParameterGrid(axes)) if axes else [{}]


def rounded(dims: dict[str, Dimension], values: dict[str, Any]) -> dict[str, Any]:
    """Values of continuous dimensions rounded to SIGNIFICANT_DIGITS significant digits (and kept within their
    bounds): the sampler's last bits depend on the CPU's floating-point kernels, a run id must not."""
    out = dict(values)
    for key, dim in dims.items():
        if isinstance(dim, Uniform | LogUniform) and isinstance(out.get(key), float):
            out[key] = min(max(float(f"{out[key]:.{SIGNIFICANT_DIGITS}g}"), dim.low), dim.high)
    return out


def draw(dims: dict[str, Dimension], history: list[Finished], kind: str, base_seed: int, seed: int, trials: int,
         maximize: bool) -> dict[str, Any]:
    """The values of the next trial (trial number = len(history)); `seed` is `trial_seed(...)` of that trial.

    grid: the grid in an order shuffled by `base_seed` (the same for every trial of a study), trial k takes point
    k (wrapping around when the budget exceeds the grid). tpe, random: a draw equal to a finished trial is replaced by a
    random one (seeded, so still a fixed function of the history). Continuous values are `rounded` before they are used or
    hashed, so the same experiment plans the same trial ids on every machine.
    """
    if not dims:
        return {}
    if kind == "grid":
        points = grid_points(dims, trials)
        order = np.random.default_rng(base_seed).permutation(len(points))
        return rounded(dims, points[int(order[len(history) % len(points)])])
    tried = [{key: past.values.get(key) for key in dims} for past in history]
    values = rounded(dims, _optuna_draw(dims, history, kind, seed, trials, maximize))
    for attempt in range(1, MAX_REDRAWS + 1):  # a draw equal to a finished trial would train the same run again
        if values not in tried:
            break
        values = rounded(dims, _optuna_draw(dims, history, "random", _seed_of(seed, "redraw", attempt), trials, maximize))
    return values

