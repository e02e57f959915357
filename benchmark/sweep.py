"""A sweep: the experiment's prepared data, its planned runs and its store; which runs are pending; claiming one."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import methods
from benchmark import numerics
from benchmark.dataset import Prepared, prepare
from benchmark.errors import UserError
from benchmark.experiment import Experiment
from benchmark.plan import RunSpec, plan_runs
from benchmark.store import Store

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sweep:
    cfg: Experiment
    store: Store
    prepared: Prepared
    runs: list[RunSpec]
    on_recorded: Callable[[dict], None] | None = None
    eta: Any = None  # benchmark.estimate.Eta while `run` shows a time-left estimate on its bar

    def recorded(self, record: dict) -> None:
        """Tell the driving process's listener (the trackers) that a run was recorded."""
        if self.on_recorded is not None:
            self.on_recorded(record)

    def status_of(self, run: RunSpec) -> str:
        record = self.store.read_record(run.run_id)
        if record is None:
            return "pending"
        return record.get("status", "pending")

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


def open_sweep(cfg: Experiment, decode_images: bool = True) -> Sweep:
    """Load plugins, prepare the data and folds, plan all runs. Writes nothing to the output folder."""
    where = cfg.source
    try:
        methods.load_plugins(cfg.plugins, cfg.folder)
    except UserError as exc:
        raise UserError(f"{where}: plugins: {exc}") from None
    store = Store(cfg.run.output)
    prepared = prepare(cfg, decode_images=decode_images)
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


