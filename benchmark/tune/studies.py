"""Studies (one method on one outer fold of one backbone and seed) and their trials as ordinary runs.

Trial k of a study is a run whose method parameters and train.* keys are drawn from trials 0..k-1 (read back from
their records), tagged with its trial number in the run id. `frontier` replays every study from the records on
disk and returns the trials known so far and the next one to train per study: the runner trains those, then asks
again, until every study has its budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import methods
from benchmark.errors import UserError
from benchmark.experiment import Experiment, macro_headline
from benchmark.plan import RunSpec, make_run, method_params, shared_identity
from benchmark.train import MAXIMIZE
from benchmark.tune.sampling import Finished, draw, grid_points, trial_seed
from benchmark.tune.space import check_train_dimensions, experiment_dimensions, split_values, study_dimensions
from methods.space import Dimension, corners


@dataclass(frozen=True)
class Tuning:
    """The experiment's `tune:` section, resolved: budget, sampler, seed, the score and its direction."""

    trials: int
    sampler: str
    seed: int
    metric: str
    extra: dict[str, Dimension]

    @property
    def maximize(self) -> bool:
        return self.metric != "val_nll" and MAXIMIZE[self.metric]


@dataclass(frozen=True)
class Study:
    method: str
    base_params: dict
    dims: dict[str, Dimension]
    backbone: str
    weights: str | None
    repeat: int
    fold: int
    seed: int

    def budget(self, tuning: Tuning) -> int:
        """`tune.trials`; 1 when there is nothing to search, and at most the grid's size with sampler grid (more
        trials would repeat the same computation)."""
        if not self.dims:
            return 1
        if tuning.sampler == "grid":
            return min(tuning.trials, len(grid_points(self.dims, tuning.trials)))
        return tuning.trials


def tune_metric(cfg: Experiment, class_names: list[str]) -> str:
    """The inner-validation score trials are ranked by: protocol.select_by; val_nll for select_by: val_loss (each
    objective's own loss adds its regularizer, which depends on the very parameter being searched: ranking by it
    would favour, e.g., confidence_penalty's largest beta); with select_by: last the report's headline (macro-F1 for
    more than two classes without data.positive, else F1)."""
    select_by = cfg.protocol.select_by
    if select_by == "val_loss":
        return "val_nll"
    if select_by != "last":
        return select_by
    return "val_macro_f1" if macro_headline(len(class_names), cfg.data.positive) else "val_f1"


def method_names(cfg: Experiment) -> list[str]:
    return list(dict.fromkeys(cfg.method_names()))


def base_params(cfg: Experiment, method: str) -> dict:
    """The method's fixed parameters from its first entry in `methods:` (grid lists left out: tuned or default)."""
    return next((entry.fixed for entry in cfg.method_entries() if entry.name == method), {})


def resolve_tuning(cfg: Experiment, class_names: list[str]) -> Tuning | None:
    """The `tune:` section checked against the experiment (None when it has none)."""
    tune = cfg.tune
    if tune is None:
        return None
    where = cfg.source
    extra = experiment_dimensions(tune.space, method_names(cfg), where)
    check_train_dimensions(cfg, extra, where)
    tuning = Tuning(tune.trials, tune.sampler, tune.seed, tune_metric(cfg, class_names), extra)
    for method in method_names(cfg):
        check_method_dimensions(cfg, method, study_dimensions(method, extra))
    return tuning


def check_method_dimensions(cfg: Experiment, method: str, dims: dict[str, Dimension]) -> None:
    """Every bound and choice of the method's dimensions builds the method (e.g. epsilon ≥ 1 is refused)."""
    base = base_params(cfg, method)
    for key, dim in dims.items():
        if not key.startswith(f"{method}."):
            continue
        for value in corners(dim):
            try:
                methods.build(method, **(base | {key.split(".", 1)[1]: value}))
            except UserError as exc:
                raise UserError(f"{cfg.source}: tune: {key} ~ {dim.describe()}: {exc}") from None


def studies(cfg: Experiment, tuning: Tuning, fixed: list[RunSpec]) -> list[Study]:
    """One study per method × backbone × seed × (repeat, fold) of the fixed plan, in the plan's order."""
    cells = list(dict.fromkeys((r.backbone, r.weights, r.seed, r.repeat, r.fold) for r in fixed))
    out = []
    for method in method_names(cfg):
        dims = study_dimensions(method, tuning.extra)
        base = base_params(cfg, method)
        for backbone, weights, seed, repeat, fold in cells:
            out.append(Study(method, base, dims, backbone, weights, repeat, fold, seed))
    return out


def trial_run(cfg: Experiment, dataset_fingerprint: str, study: Study, trial: int, values: dict[str, Any],
              budget: int) -> RunSpec:
    """Trial `trial` of `study` (of `budget`) with the drawn `values` as a run (its id hashes the values and the
    trial number)."""
    params, overrides = split_values(study.method, values)
    return make_run(cfg, shared_identity(cfg, dataset_fingerprint, overrides), study.method,
                    method_params(study.method, study.base_params | params), study.backbone, study.weights, study.seed, study.repeat,
                    study.fold, overrides=overrides, trial=trial, tune_values=values, tune_budget=budget)


UNDRAWN = "not drawn yet"


@dataclass
class Frontier:
    """Trials whose values are known (finished or next), and stand-ins for the later ones (run_id UNDRAWN)."""

    known: list[RunSpec]
    pending: list[RunSpec]
    undrawn: list[RunSpec]


def frontier(sweep, tuning: Tuning, retry_failed: bool = False, attempted: frozenset[str] = frozenset()) -> Frontier:
    """Replay every study from its records: all trials known so far, and each unfinished study's next trial.

    A failed trial counts as finished (a failed Optuna trial) unless `retry_failed` and not yet `attempted` in
    this invocation.
    """
    known, pending, undrawn = [], [], []
    for study in studies(sweep.cfg, tuning, sweep.runs):
        history: list[Finished] = []
        base_seed = trial_seed(tuning.seed, study.repeat, study.fold, study.seed, -1)
        for k in range(study.budget(tuning)):
            seed = trial_seed(tuning.seed, study.repeat, study.fold, study.seed, k)
            values = draw(study.dims, history, tuning.sampler, base_seed, seed, tuning.trials, tuning.maximize)
            run = trial_run(sweep.cfg, sweep.prepared.scan_fingerprint, study, k, values, study.budget(tuning))
            known.append(run)
            record = sweep.store.read_record(run.run_id) or {}
            status = record.get("status", "pending")
            if status == "done" or (status == "failed" and (not retry_failed or run.run_id in attempted)):
                score = record.get(tuning.metric) if status == "done" else None
                history.append(Finished(values, None if score is None else float(score)))
                continue
            pending.append(run)
            later = range(k + 1, study.budget(tuning))
            undrawn += [dataclasses.replace(run, run_id=UNDRAWN, trial=k) for k in later]
            break
    return Frontier(known, pending, undrawn)
