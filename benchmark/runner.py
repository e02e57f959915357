"""Run a sweep: prepare data and folds once, skip finished runs, train the rest, record each atomically."""

from __future__ import annotations

import contextlib
import json
import platform
import resource
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
import yaml

import methods
from benchmark.config import public
from benchmark.dataset import Prepared, prepare
from benchmark.errors import UserError
from benchmark.plan import check_only, plan_runs, select
from benchmark.protocol import save_folds
from benchmark.store import Store, atomic_write_csv, atomic_write_text, crash_point
from benchmark.train import RunSpec, resolve_device, train_run

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sweep:
    cfg: dict
    store: Store
    prepared: Prepared
    runs: list[RunSpec]

    def status_of(self, run: RunSpec) -> str:
        record = self.store.read_record(run.run_id)
        if record is None:
            return "pending"
        return record.get("status", "pending")


def git_provenance() -> tuple[str, bool]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10)
        return (commit.stdout.strip() or "unknown"), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def versions() -> dict:
    import numpy
    import sklearn
    import timm
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
    }


def open_sweep(cfg: dict, decode_images: bool = True) -> Sweep:
    """Load plugins, prepare the data and folds, plan all runs. Writes nothing to the output folder."""
    where = cfg["_file"]
    try:
        methods.load_plugins(cfg["plugins"], Path(cfg["_dir"]))
    except UserError as exc:
        raise UserError(f"{where}: plugins: {exc}") from None
    store = Store(cfg["run"]["output"])
    try:
        prepared = prepare(cfg, decode_images=decode_images)
    except UserError as exc:
        raise exc if str(exc).startswith(where) else UserError(f"{where}: {exc}") from None
    runs = plan_runs(cfg, prepared.scan_fingerprint, [(f.repeat, f.fold) for f in prepared.folds])
    return Sweep(cfg, store, prepared, runs)


def check_image_size(sweep: Sweep) -> None:
    """data.image_size is at least each registered backbone's minimum (timm: backbones declare none)."""
    size = sweep.cfg["data"]["image_size"]
    for name in dict.fromkeys(run.backbone for run in sweep.runs):
        minimum = methods.backbone_info(name)["min_image_size"]
        if minimum is not None and size < minimum:
            raise UserError(f"{sweep.cfg['_file']}: data.image_size: {size} is too small for backbone {name!r}, "
                            f"which needs at least {minimum}; raise data.image_size or drop the backbone")


def check_sweep(sweep: Sweep, only: dict | None = None) -> torch.device | None:
    """What open_sweep cannot see: --only matching nothing, image size against each backbone, each weights file
    against its backbone, the device, Ray being installed.

    Returns the device for the local executor (None for Ray: each worker picks its own).
    """
    cfg, where = sweep.cfg, sweep.cfg["_file"]
    check_only(sweep.runs, only or {})
    check_image_size(sweep)
    checked = set()
    for run in sweep.runs:
        if run.weights is None or (run.backbone, run.weights) in checked:
            continue
        checked.add((run.backbone, run.weights))
        try:
            methods.build_backbone(run.backbone, len(sweep.prepared.class_names), cfg["data"]["image_size"],
                                   weights=run.weights)
        except UserError as exc:
            raise UserError(f"{where}: backbones: {exc}") from None
    if cfg["run"]["executor"] == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError(f"{where}: run.executor: 'ray' needs Ray installed (pip install 'ray[default]'), "
                            "or use run.executor: local") from None
        return None
    try:
        return resolve_device(cfg["run"]["device"])
    except RuntimeError as exc:
        raise UserError(f"{where}: {exc}") from None


def write_experiment_files(sweep: Sweep) -> None:
    """Create the output folder, (re)write config.resolved.yaml and folds.json, and tidy what a killed process left
    (temp files, the resume checkpoint and lease of a run it had just recorded)."""
    sweep.store.create(f"{sweep.cfg['_file']}: run.output")
    with sweep.store.locked():
        sweep.store.remove_temp_files()
        atomic_write_text(sweep.store.root / "config.resolved.yaml", yaml.safe_dump(public(sweep.cfg), sort_keys=False))
        save_folds(sweep.store.root / "folds.json", sweep.prepared.files, sweep.prepared.folds)
        sweep.store.write_plan([run.run_id for run in sweep.runs])
    for run in sweep.runs:
        if sweep.status_of(run) == "done":
            (sweep.store.run_dir(run.run_id) / "last.pt").unlink(missing_ok=True)
            if sweep.store.lease_path(run.run_id).exists() and sweep.store.acquire(run.run_id):
                sweep.store.release(run.run_id)


def make_record(sweep: Sweep, run: RunSpec, status: str, error: str, result, wall: float, device: str) -> dict:
    commit, dirty = git_provenance()
    params = run.method_params
    label = run.method if not params else f"{run.method}({', '.join(f'{k}={v}' for k, v in params.items())})"
    record = {
        "experiment": run.experiment,
        "run_id": run.run_id,
        "method": run.method,
        "method_params": json.dumps(params, sort_keys=True),
        "method_label": label,
        **{f"param_{k}": v for k, v in params.items()},
        "backbone": run.backbone,
        "fold": run.fold,
        "repeat": run.repeat,
        "seed": run.seed,
        "task_classes": json.dumps(sweep.prepared.class_names),
        "positive": sweep.prepared.class_names[sweep.prepared.positive],
        "status": status,
        "error": error,
    }
    if result is not None:
        record.update({f"test_{k}": v for k, v in result.test.items()})
        record.update({f"val_{k}": v for k, v in result.val.items() if k != "confusion"})
        record.update(selected_epoch=result.selected_epoch, epochs_run=result.epochs_run,
                      n_train=result.n_train, n_val=result.n_val, n_test=result.n_test)
    record.update(
        config_hash=run.run_id,
        resolved_config=run.resolved,
        dataset_fingerprint=sweep.prepared.dataset_fingerprint,
        folds_fingerprint=sweep.prepared.folds_fingerprint,
        git_commit=commit,
        git_dirty=dirty,
        versions=json.dumps(versions()),
        device=device,
        wall_time_s=round(wall, 3),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return record


def train_and_record(sweep: Sweep, run: RunSpec, device: torch.device,
                     show_progress: bool = True) -> tuple[dict, pd.DataFrame | None]:
    """Train one run (resuming from its last.pt) and return its record and epoch history; writes no record."""
    run_dir = sweep.store.run_dir(run.run_id)
    tick = time.perf_counter()
    try:
        result = train_run(run, sweep.cfg, sweep.prepared, run_dir, device,
                           heartbeat=lambda: sweep.store.heartbeat(run.run_id), show_progress=show_progress)
    except Exception as exc:  # noqa: BLE001 - anything a run raises is that run's failure; Ctrl-C stops the sweep
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        return make_record(sweep, run, "failed", reason, None, time.perf_counter() - tick, str(device)), None
    history = result.history.assign(
        run_id=run.run_id, experiment=run.experiment, method=run.method,
        backbone=run.backbone, fold=run.fold, repeat=run.repeat, seed=run.seed,
    )
    record = make_record(sweep, run, "done", "", result, time.perf_counter() - tick, str(device))
    history.insert(0, "method_label", record["method_label"])
    return record, history


def save_result(sweep: Sweep, record: dict, history: pd.DataFrame | None) -> None:
    """Write a finished run: its epochs.csv, then its record (the commit point), then drop its resume checkpoint."""
    run_dir = sweep.store.run_dir(record["run_id"])
    if history is not None:
        atomic_write_csv(run_dir / "epochs.csv", history)
    sweep.store.write_record(record)
    crash_point("recorded")
    if record["status"] == "done":
        (run_dir / "last.pt").unlink(missing_ok=True)


def execute_run(sweep: Sweep, run: RunSpec, device: torch.device, show_progress: bool = True) -> dict:
    """Train one run and write its record (done or failed). The caller holds the run's lease."""
    record, history = train_and_record(sweep, run, device, show_progress)
    save_result(sweep, record, history)
    return record


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


def run_sweep(cfg: dict, only: dict | None = None, retry_failed: bool = False, show_progress: bool = True) -> dict:
    """Run every pending run; returns counts. Finished runs are skipped, interrupted ones resume.

    Everything the input can get wrong is checked before the output folder is created or touched.
    """
    wall = time.perf_counter()
    sweep = open_sweep(cfg)
    device = check_sweep(sweep, only)
    with contextlib.ExitStack() as session:
        if device is None:
            from benchmark.executors.ray_executor import ray_session

            session.enter_context(ray_session(cfg["run"]["ray"]["address"], f"{cfg['_file']}: run.ray.address"))
        counts = _run_pending(sweep, select(sweep.runs, only or {}), device, retry_failed, show_progress)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts["wall_time_s"] = time.perf_counter() - wall
    counts["peak_rss_mib"] = peak_mib
    return counts


def _run_pending(sweep: Sweep, runs: list[RunSpec], device: torch.device | None, retry_failed: bool,
                 show_progress: bool) -> dict:
    """Create the output folder and train the pending runs among `runs` (device None: on Ray)."""
    cfg = sweep.cfg
    write_experiment_files(sweep)
    todo = [r for r in pending_runs(sweep, retry_failed) if r in runs]
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    from benchmark.executors.local import resolve_workers, run_parallel, run_serial

    workers = resolve_workers(cfg["run"]["workers"], cfg["train"]["threads"], len(todo))
    if device is None:
        where = f"Ray ({cfg['run']['ray']['address'] or 'local instance'})"
    else:
        where = str(device) + (f" in {workers} worker processes" if workers > 1 else "")
    print(f"{cfg['name']}: {len(runs)} runs, {len(runs) - len(todo)} already finished, {len(todo)} to run on {where}",
          file=sys.stderr)
    counts = {"done": 0, "failed": 0, "skipped": len(runs) - len(todo), "busy": 0}
    if device is None:
        from benchmark.executors.ray_executor import run_on_ray

        counts |= run_on_ray(sweep, todo, retry_failed=retry_failed, show_progress=show_progress)
    elif workers > 1:
        counts |= run_parallel(sweep, todo, device, workers, retry_failed, show_progress)
    else:
        counts |= run_serial(sweep, todo, device, retry_failed, show_progress)
    sweep.store.rebuild_tables()
    return counts
