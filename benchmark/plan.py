"""Expand an experiment into its runs (method grid × backbone × repeat × fold × seed), each with a stable id."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import methods
from benchmark.config import with_overrides
from benchmark.data.digests import file_digest
from benchmark.errors import UserError, brief, did_you_mean, safe_name
from benchmark.experiment import Experiment, MethodEntry
from benchmark.numerics import effective_threads


@dataclass
class RunSpec:
    """One cell of the sweep (its id hashes `resolved`): a method with fixed parameters, a backbone, a fold and a seed.

    A tuning trial also carries its trial number, the values drawn for it and the train.* keys it overrides.
    """

    run_id: str
    experiment: str
    method: str
    method_params: dict
    backbone: str
    weights: str | None
    repeat: int
    fold: int
    seed: int
    resolved: dict = field(default_factory=dict, repr=False)
    overrides: dict = field(default_factory=dict)
    trial: int | None = None
    tune_values: dict = field(default_factory=dict)
    tune_budget: int | None = None


# Keys that do not change what a run computes; they stay out of the run id. Every train.* key is in it: the thread
# count, memory format, evaluation batch size and numerics each change the last bits of a run's numbers.
NON_SEMANTIC = {
    "run": None,
    "tune": None,
    "data": ("root",),
}


def method_params(name: str, params: dict) -> dict:
    """A run's method parameters: the method's own coerced values with defaults filled in, sorted (`beta: 1` ≡
    `beta: 1.0`, `focal` ≡ `{name: focal, gamma: 2}`), so one computation has one run id. Fixed runs and tuning
    trials alike get theirs here."""
    return dict(sorted(methods.resolve_params(name, params).items()))


def expand_methods(entries: list[MethodEntry], where: str) -> list[tuple[str, dict]]:
    """(name, params) per grid point of each entry (each point built once, so the method's own range checks run);
    repeated points are dropped."""
    out = []
    for entry in entries:
        empty = [k for k, v in entry.params.items() if isinstance(v, list) and not v]
        if empty:
            raise UserError(f"{where}: methods[{entry.index}].{safe_name(empty[0])}: an empty list is a grid of no "
                            "values and would plan no run; give at least one value")
        for point in entry.points():
            try:
                methods.build(entry.name, **point)
            except UserError as exc:
                raise UserError(f"{where}: methods[{entry.index}]: {exc}") from None
            out.append((entry.name, method_params(entry.name, point)))
    return _unique(out, key=lambda item: (item[0], json.dumps(item[1], sort_keys=True)))


def _unique(items: list, key=lambda item: item) -> list:
    """`items` without repeats (first occurrence kept, order preserved)."""
    seen, out = set(), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            out.append(item)
    return out


def check_backbone(name: str, where: str, index: int) -> None:
    if name.startswith("timm:"):
        import timm

        if not timm.is_model(name[5:]):
            close = did_you_mean(name[5:], timm.list_models())
            raise UserError(f"{where}: backbones[{index}]: unknown timm architecture {brief(name[5:])}{close}")
        return
    known = methods.list_backbones()
    if name not in known:
        raise UserError(
            f"{where}: backbones[{index}]: unknown backbone {brief(name)}{did_you_mean(name, known)}; "
            f"registered: {', '.join(known)} (or any timm architecture as timm:NAME)"
        )


def expand_backbones(entries: list, where: str, base: Path) -> list[tuple[str, str | None]]:
    out = []
    for i, entry in enumerate(entries):
        name, weights = (entry, None) if isinstance(entry, str) else (entry["name"], entry.get("weights"))
        check_backbone(name, where, i)
        if weights is not None:
            path = Path(weights).expanduser()
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                raise UserError(f"{where}: backbones[{i}].weights: file {path} does not exist")
            weights = str(path.resolve())
        out.append((name, weights))
    return _unique(out)


def semantic_config(cfg: Experiment) -> dict:
    """The part of the config that determines results (everything but paths, executor and speed knobs)."""
    out = {}
    for key, value in cfg.model_dump().items():
        if key in ("methods", "backbones", "seeds", "name", "plugins") or NON_SEMANTIC.get(key, ()) is None:
            continue
        if isinstance(value, dict) and key in NON_SEMANTIC:
            value = {k: v for k, v in value.items() if k not in NON_SEMANTIC[key]}
        out[key] = value
    out["train"]["threads"] = effective_threads(cfg.train.numerics, cfg.train.threads)
    return out


def run_id_for(resolved: dict) -> str:
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:12]


def shared_identity(cfg: Experiment, dataset_fingerprint: str, overrides: dict | None = None) -> dict:
    """What every run of the config shares in its id: the semantic config (with a trial's train.* overrides)."""
    return semantic_config(with_overrides(cfg, overrides or {})) | {"dataset_fingerprint": dataset_fingerprint}


def make_run(cfg: Experiment, shared: dict, method: str, params: dict, backbone: str, weights: str | None, seed: int,
             repeat: int, fold: int, overrides: dict | None = None, trial: int | None = None,
             tune_values: dict | None = None, tune_budget: int | None = None) -> RunSpec:
    """One run and its id (a tuning trial's id also hashes its trial number)."""
    resolved = shared | {
        "method": method,
        "method_params": params,
        "backbone": backbone,
        "weights": None if weights is None else file_digest(Path(weights))[:16],
        "seed": seed,
        "repeat": repeat,
        "fold": fold,
    }
    if trial is not None:
        resolved["tune_trial"] = trial
    return RunSpec(run_id_for(resolved), cfg.name, method, params, backbone, weights, repeat, fold, seed, resolved,
                   dict(overrides or {}), trial, dict(tune_values or {}), tune_budget)


def plan_runs(cfg: Experiment, dataset_fingerprint: str, folds: list[tuple[int, int]]) -> list[RunSpec]:
    """All fixed runs of the experiment, in a stable order; folds is the list of (repeat, fold) pairs."""
    where = cfg.source
    method_points = expand_methods(cfg.method_entries(), where)
    backbones = expand_backbones(cfg.backbones, where, cfg.folder)
    shared = shared_identity(cfg, dataset_fingerprint)
    runs = [
        make_run(cfg, shared, method, params, backbone, weights, seed, repeat, fold)
        for (backbone, weights), (method, params), seed, (repeat, fold) in itertools.product(
            backbones, method_points, _unique(cfg.seeds), _unique(folds)
        )
    ]
    return _unique(runs, key=lambda run: run.run_id)


def parse_only(terms: list[str]) -> dict[str, set[str]]:
    """`method=alpha_js backbone=resnet18 fold=0` -> filters (several values: repeat the key or use commas;
    `method=ce,fold=0` reads as `method=ce fold=0`)."""
    allowed = ("method", "backbone", "fold", "repeat", "seed", "run_id")
    filters: dict[str, set[str]] = {}
    split = []
    for term in terms:
        for piece in term.split(","):
            if "=" in piece or not split:
                split.append(piece)
            else:
                split[-1] += "," + piece
    for term in split:
        key, _, value = term.partition("=")
        if key not in allowed or not value:
            raise UserError(f"--only {term!r}: expected KEY=VALUE with KEY one of {', '.join(allowed)}{did_you_mean(key, list(allowed))}")
        filters.setdefault(key, set()).update(value.split(","))
    return filters


def select(runs: list[RunSpec], filters: dict[str, set[str]]) -> list[RunSpec]:
    return [r for r in runs if all(str(getattr(r, key)) in values for key, values in filters.items())]


def check_only(runs: list[RunSpec], filters: dict[str, set[str]]) -> None:
    """Every --only value matches some run, and all of them together match at least one: else a UserError."""
    for key, values in filters.items():
        existing = sorted({str(getattr(r, key)) for r in runs}, key=lambda v: (len(v), v))
        unknown = sorted(values - set(existing))
        if unknown:
            shown = ", ".join(existing[:20]) + (f" and {len(existing) - 20} more" if len(existing) > 20 else "")
            raise UserError(f"--only {key}={','.join(safe_name(v, 40) for v in unknown)}: matches no run; {key} values: {shown or 'none'}")
    if filters and not select(runs, filters):
        terms = " ".join(f"{k}={','.join(sorted(v))}" for k, v in filters.items())
        raise UserError(f"--only {terms}: each matches runs, but no run matches all of them")
