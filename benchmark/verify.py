"""Re-train recorded runs in a scratch folder and compare every recorded metric with the new value.

The scratch folder gets a copy of every *other* record of the experiment (record.json only), so the plan and the
tuning replay there are exactly the original's, and only the chosen runs are pending; the runner then trains them
under the same config (ids, folds, numerics, threads). Nothing in the original output folder is written.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.errors import UserError
from benchmark.experiment import Experiment
from benchmark.plan import RunSpec, check_only, select
from benchmark.rundir import RECORD
from benchmark.store import Store

# Recorded values that are not scores (or differ by design between two trainings of the same run).
NOT_COMPARED = {"fold", "repeat", "seed", "wall_time_s", "tune_trial", "tune_budget", "n_train", "n_val", "n_test"}
NATIVE_TOLERANCE = 0.02  # native numerics: scores in [0, 1] may differ this much (CPU kinds differ by points)


@dataclass(frozen=True)
class Verification:
    """The comparison table (run, metric, recorded, new, difference, agrees), the tolerance and the scratch folder."""

    table: pd.DataFrame
    tolerance: float
    scratch: Path

    @property
    def agrees(self) -> bool:
        return bool(len(self.table)) and bool(self.table["agrees"].all())


def recorded_runs(cfg: Experiment) -> tuple[list[RunSpec], dict[str, dict]]:
    """The planned runs (fixed runs and the tuning trials known from the records) and the done records among them."""
    from benchmark.sweep import open_sweep
    from benchmark.tune.studies import frontier, resolve_tuning

    sweep = open_sweep(cfg, decode_images=False)
    tuning = resolve_tuning(cfg, sweep.prepared.class_names)
    runs = sweep.runs + (frontier(sweep, tuning).known if tuning else [])
    done = {r["run_id"]: r for r in sweep.store.records(quiet=True) if r.get("status") == "done"}
    return runs, {run.run_id: done[run.run_id] for run in runs if run.run_id in done}


def choose(runs: list[RunSpec], done: dict[str, dict], n: int, only: dict, seed: int, where: str) -> list[RunSpec]:
    """`only`'s done runs, or else `n` done runs drawn at random (seeded) from every done run."""
    if only:
        check_only(runs, only)
        chosen = [run for run in select(runs, only) if run.run_id in done]
        if not chosen:
            raise UserError("verify: the runs --only names have no finished record to compare with")
        return chosen
    candidates = [run for run in runs if run.run_id in done]
    if not candidates:
        raise UserError(f"verify: no finished run of the experiment is recorded in {where}; run it first")
    return sorted(random.Random(seed).sample(candidates, min(n, len(candidates))), key=lambda r: r.run_id)


def make_scratch(cfg: Experiment, scratch: Path | None, keep: set[str]) -> Experiment:
    """The scratch folder (a new one, or `scratch` when absent or empty) with the other runs' records copied in; the
    config writing there."""
    if scratch is None:
        scratch = Path(tempfile.mkdtemp(prefix=f"verify-{cfg.name}-"))
    elif scratch.exists() and (not scratch.is_dir() or any(scratch.iterdir())):
        raise UserError(f"verify --scratch {scratch}: exists and is not an empty folder; name a new folder")
    source = Store(cfg.run.output)
    for folder in sorted((source.root / "runs").glob("*")):
        if folder.name not in keep and (folder / RECORD).is_file():
            (scratch / "runs" / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / RECORD, scratch / "runs" / folder.name / RECORD)
    from benchmark.runner import mark_output

    scratch.mkdir(parents=True, exist_ok=True)
    mark_output(scratch, cfg.name)
    return cfg.replace(run=cfg.run.model_copy(update={"output": str(scratch)}))


def metric_names(record: dict) -> list[str]:
    """The numeric scores of a record: test_*, val_*, selected_epoch, epochs_run."""
    return [k for k, v in record.items()
            if (k.startswith(("test_", "val_")) or k in ("selected_epoch", "epochs_run")) and k not in NOT_COMPARED
            and isinstance(v, (int, float)) and not isinstance(v, bool)]


def tolerance_for(records: list[dict], asked: float | None) -> float:
    """`asked`, else 0 (exact) when every record was made with portable numerics, else NATIVE_TOLERANCE."""
    if asked is not None:
        return asked
    portable = all((r.get("environment") or {}).get("numerics") == "portable" for r in records)
    return 0.0 if portable else NATIVE_TOLERANCE


def compare(old: dict[str, dict], new: dict[str, dict], tolerance: float) -> pd.DataFrame:
    """One row per run and metric: recorded, new, difference, whether they agree within `tolerance`."""
    rows = []
    for run_id, before in old.items():
        after = new.get(run_id)
        if after is None or after.get("status") != "done":
            reason = "no new record" if after is None else f"re-run failed: {after.get('error', '')}"
            rows.append({"run_id": run_id, "method_label": before.get("method_label"), "metric": reason,
                         "recorded": math.nan, "new": math.nan, "difference": math.nan, "agrees": False})
            continue
        for name in metric_names(before):
            a, b = float(before[name]), float(after.get(name, math.nan))
            diff = b - a
            same = a == b or (math.isnan(a) and math.isnan(b)) or abs(diff) <= tolerance
            rows.append({"run_id": run_id, "method_label": before.get("method_label"), "metric": name,
                         "recorded": a, "new": b, "difference": diff, "agrees": bool(same)})
    return pd.DataFrame(rows, columns=["run_id", "method_label", "metric", "recorded", "new", "difference", "agrees"])


def verify(cfg: Experiment, n: int = 3, only: dict | None = None, scratch: Path | None = None,
           tolerance: float | None = None, seed: int = 0, show_progress: bool = True) -> Verification:
    """Re-train `n` recorded runs of `cfg` (or those `only` names) in a scratch folder and compare their metrics."""
    from benchmark.runner import run_sweep

    runs, done = recorded_runs(cfg)
    chosen = choose(runs, done, n, only or {}, seed, cfg.run.output)
    ids = {run.run_id for run in chosen}
    scratch_cfg = make_scratch(cfg, scratch, ids)
    run_sweep(scratch_cfg, only={"run_id": ids}, show_progress=show_progress)
    new = {r["run_id"]: r for r in Store(scratch_cfg.run.output).records(quiet=True) if r["run_id"] in ids}
    old = {run_id: done[run_id] for run_id in sorted(ids)}
    limit = tolerance_for(list(old.values()), tolerance)
    return Verification(compare(old, new, limit), limit, Path(scratch_cfg.run.output))
