"""A sweep: the experiment's prepared data, its planned runs and its store; which runs are pending; claiming one."""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import methods
from benchmark import numerics
from benchmark.dataset import Prepared, prepare
from benchmark.errors import UserError
from benchmark.experiment import Experiment, macro_headline
from benchmark.plan import RunSpec, plan_runs
from benchmark.record import RunRecord
from benchmark.store import Store

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sweep:
    cfg: Experiment
    store: Store
    prepared: Prepared
    runs: list[RunSpec]
    on_recorded: Callable[[RunRecord], None] | None = None
    eta: Any = None  # benchmark.estimate.Eta while `run` shows a time-left estimate on its bar

    def recorded(self, record: RunRecord) -> None:
        """Tell the driving process's listener (the trackers) that a run was recorded."""
        if self.on_recorded is not None:
            self.on_recorded(record)

    def status_of(self, run: RunSpec) -> str:
        record = self.store.read_record(run.run_id)
        if record is None:
            return "pending"
        return record.status

    @functools.cached_property
    def provenance(self) -> dict:
        """Git commit, dirty flag and library versions: computed once per sweep (per process), not per run."""
        commit, dirty = git_provenance()
        return {"git_commit": commit, "git_dirty": dirty, "versions": numerics.versions()}


def git_provenance() -> tuple[str, bool]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10)
        return (commit.stdout.strip() or "unknown"), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def resolve_select_by(cfg: Experiment, class_names: list[str]) -> Experiment:
    """protocol.select_by left at its default follows the headline: val_macro_f1 for more than two classes without
    data.positive (val_f1 would be the F1 of the class that sorts second), else val_f1 (run ids unchanged)."""
    if "select_by" in cfg.protocol.model_fields_set or not macro_headline(len(class_names), cfg.data.positive):
        return cfg
    return cfg.replace(protocol=cfg.protocol.model_copy(update={"select_by": "val_macro_f1"}))


def warn_single_class_f1(cfg: Experiment, class_names: list[str]) -> None:
    """An explicit select_by: val_f1 on such a task selects by one class's F1: said once, kept (published runs use it)."""
    if cfg.protocol.select_by == "val_f1" and macro_headline(len(class_names), cfg.data.positive):
        print(f"warning: {cfg.source}: protocol.select_by: val_f1 with {len(class_names)} classes and no data.positive "
              f"selects checkpoints, grid settings and trials by the F1 of class {class_names[1]!r} alone; the report's "
              "headline is macro-F1: set protocol.select_by: val_macro_f1 (new run ids) or data.positive", file=sys.stderr)


def open_sweep(cfg: Experiment, decode_images: bool = True) -> Sweep:
    """Load plugins, prepare the data and folds, resolve protocol.select_by, plan all runs. Writes nothing to the
    output folder."""
    where = cfg.source
    try:
        methods.load_plugins(cfg.plugins, cfg.folder)
    except UserError as exc:
        raise UserError(f"{where}: plugins: {exc}") from None
    store = Store(cfg.run.output)
    prepared = prepare(cfg, decode_images=decode_images)
    cfg = resolve_select_by(cfg, prepared.class_names)
    runs = plan_runs(cfg, prepared.scan_fingerprint, [(f.repeat, f.fold) for f in prepared.folds])
    return Sweep(cfg, store, prepared, runs)


def wanted_statuses(retry_failed: bool) -> set[str]:
    return {"pending", "failed"} if retry_failed else {"pending"}


def claim(sweep: Sweep, run: RunSpec, retry_failed: bool) -> bool:
    """Take the run's lease, then re-read its record: False if another process holds it or finished it meanwhile."""
    if not sweep.store.acquire(run.run_id):
        return False
    if sweep.status_of(run) not in wanted_statuses(retry_failed):
        sweep.store.release(run.run_id)
        return False
    return True


def pending_runs(sweep: Sweep, retry_failed: bool) -> list[RunSpec]:
    return [r for r in sweep.runs if sweep.status_of(r) in wanted_statuses(retry_failed)]


