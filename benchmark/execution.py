"""Finish a run, whatever executes it: train it, make its record (done or failed), write record and history."""

from __future__ import annotations

import time
import traceback
from datetime import datetime, timezone

import pandas as pd
import torch

from benchmark import numerics
from benchmark.config import with_overrides
from benchmark.crash import crash_point
from benchmark.plan import RunSpec
from benchmark.record import RunRecord, method_label
from benchmark.sweep import Sweep
from benchmark.train import train_run
from benchmark.tune.studies import tune_metric


def _environment(mode: str, device: str) -> dict | None:
    """This process's numerics for a run that ran here; None for one that died elsewhere (`device` is then a label such
    as 'ray', not a torch device)."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        return None
    return numerics.state(mode, kind)


def make_record(sweep: Sweep, run: RunSpec, status: str, error: str, result, wall: float, device: str) -> RunRecord:
    """The run's record, done (with `result`) or failed (`error`, result None)."""
    names = list(sweep.prepared.class_names)
    fields: dict = {}
    if run.trial is not None:
        fields.update(tune_trial=run.trial, tune_budget=run.tune_budget, tune_params=dict(run.tune_values),
                      tune_metric=tune_metric(sweep.cfg, names), overrides=dict(run.overrides))
    if result is not None:
        fields.update(test=dict(result.test), val={k: v for k, v in result.val.items() if k != "confusion"},
                      selected_epoch=result.selected_epoch, epochs_run=result.epochs_run,
                      n_train=result.n_train, n_val=result.n_val, n_test=result.n_test)
    return RunRecord(
        experiment=run.experiment, run_id=run.run_id, method=run.method, method_params=dict(run.method_params),
        method_label=method_label(run.method, run.method_params), backbone=run.backbone, fold=run.fold,
        repeat=run.repeat, seed=run.seed, task_classes=names, positive=names[sweep.prepared.positive],
        status=status, error=error, **fields,
        resolved_config=run.resolved,
        dataset_fingerprint=sweep.prepared.dataset_fingerprint,
        folds_fingerprint=sweep.prepared.folds_fingerprint,
        git_commit=sweep.provenance["git_commit"],
        git_dirty=sweep.provenance["git_dirty"],
        versions=dict(sweep.provenance["versions"]),
        environment=_environment(sweep.cfg.train.numerics, device),
        device=device,
        wall_time_s=round(wall, 3),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def train_and_record(sweep: Sweep, run: RunSpec, device: torch.device,
                     show_progress: bool | str = True) -> tuple[RunRecord, pd.DataFrame | None]:
    """Train one run (resuming from its checkpoints), write its predictions (or, when it fails, its traceback) and
    return its record and epoch history; writes no record."""
    run_dir = sweep.store.run(run.run_id)
    tick = time.perf_counter()
    try:
        result = train_run(run, with_overrides(sweep.cfg, run.overrides), sweep.prepared, run_dir, device,
                           heartbeat=lambda: sweep.store.heartbeat(run.run_id), show_progress=show_progress)
        run_dir.write_predictions(result.predictions)
    except Exception as exc:  # noqa: BLE001 - anything a run raises is that run's failure; Ctrl-C stops the sweep
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        run_dir.write_error(traceback.format_exc())
        return make_record(sweep, run, "failed", reason, None, time.perf_counter() - tick, str(device)), None
    history = result.history.assign(
        run_id=run.run_id, experiment=run.experiment, method=run.method,
        backbone=run.backbone, fold=run.fold, repeat=run.repeat, seed=run.seed,
    )
    record = make_record(sweep, run, "done", "", result, time.perf_counter() - tick, str(device))
    history.insert(0, "method_label", record.method_label)
    return record, history


def save_result(sweep: Sweep, record: RunRecord, history: pd.DataFrame | None) -> None:
    """Write a finished run: its epochs.csv, then its record (the commit point), then drop its resume checkpoint."""
    run_dir = sweep.store.run(record.run_id)
    if history is not None:
        run_dir.write_epochs(history)
    run_dir.write_record(record)
    crash_point("recorded")
    if record.status == "done":
        run_dir.drop_last()


def execute_run(sweep: Sweep, run: RunSpec, device: torch.device, show_progress: bool | str = True) -> RunRecord:
    """Train one run and write its record (done or failed). The caller holds the run's lease."""
    record, history = train_and_record(sweep, run, device, show_progress)
    save_result(sweep, record, history)
    return record


