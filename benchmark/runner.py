"""Run a sweep: check everything first, write the experiment files, hand the pending runs to the executor."""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml

import methods
from benchmark import numerics
from benchmark.atomic import atomic_write_text
from benchmark.errors import UserError, safe_name
from benchmark.executors import Executor, make_executor
from benchmark.experiment import Experiment
from benchmark.plan import RunSpec, check_only, select
from benchmark.protocol import save_folds
from benchmark.sweep import Sweep, open_sweep, pending_runs, warn_single_class_f1
from benchmark.trackers import check_installed, open_trackers
from benchmark.train import check_batches, resolve_device
from benchmark.tune.studies import Tuning, frontier, resolve_tuning, studies

OUTPUT_MARKER = ".solderbench-output"


def check_output_folder(root: Path, where: str) -> None:
    """run.output is new, empty, or a folder solderbench made (its marker, or an older version's config.resolved.yaml
    beside runs/ or plan.json): a run never writes into a folder of the user's own files."""
    if not root.exists():
        return
    if not root.is_dir():
        raise UserError(f"{where}: run.output: {safe_name(root)} exists and is not a folder; set run.output to a folder")
    if (root / OUTPUT_MARKER).is_file() or not any(root.iterdir()):
        return
    if (root / "config.resolved.yaml").is_file() and ((root / "runs").is_dir() or (root / "plan.json").is_file()):
        return
    shown = ", ".join(sorted(p.name for p in root.iterdir())[:3])
    raise UserError(f"{where}: run.output: {safe_name(root)} holds files solderbench did not make ({safe_name(shown)}, "
                    "...); a run writes results.csv, folds.json and more there: set run.output to a new or empty folder")


def mark_output(root: Path, name: str) -> None:
    """Mark `root` as an output folder solderbench made (once), so that `run` may write into it."""
    if not (root / OUTPUT_MARKER).is_file():
        atomic_write_text(root / OUTPUT_MARKER, f"made by solderbench run: the output folder of experiment {name}\n")


def check_image_size(sweep: Sweep) -> None:
    """data.image_size is at least each registered backbone's minimum (timm: backbones declare none)."""
    size = sweep.cfg.data.image_size
    for name in dict.fromkeys(run.backbone for run in sweep.runs):
        minimum = methods.backbone_info(name)["min_image_size"]
        if minimum is not None and size < minimum:
            raise UserError(f"{sweep.cfg.source}: data.image_size: {size} is too small for backbone {name!r}, "
                            f"which needs at least {minimum}; raise data.image_size or drop the backbone")


def check_methods(sweep: Sweep) -> None:
    """Each method setting against the task (e.g. alpha_js variant='reference' needs two classes)."""
    classes = len(sweep.prepared.class_names)
    points = {(run.method, json.dumps(run.method_params, sort_keys=True)): run for run in sweep.runs}
    for run in points.values():
        try:
            methods.build(run.method, **run.method_params).check_task(classes)
        except UserError as exc:
            raise UserError(f"{sweep.cfg.source}: methods: {exc}") from None


def check_sweep(sweep: Sweep, only: dict | None = None) -> torch.device | None:
    """What open_sweep cannot see: --only matching nothing, image size against each backbone, each weights file
    against its backbone, the device, Ray being installed.

    Returns the device for the local executor (None for Ray: each worker picks its own).
    """
    cfg, where = sweep.cfg, sweep.cfg.source
    check_output_folder(sweep.store.root, where)
    warn_single_class_f1(cfg, sweep.prepared.class_names)
    tuning = resolve_tuning(cfg, sweep.prepared.class_names)
    if only:  # --only may name tuning trials: replay them from the records (the runner does that again anyway)
        check_only(sweep.runs + (frontier(sweep, tuning).known if tuning else []), only)
    check_image_size(sweep)
    check_batches(cfg, sweep.prepared.folds)
    check_methods(sweep)
    check_installed(cfg.run.trackers, where)
    checked = set()
    for run in sweep.runs:
        if run.weights is None or (run.backbone, run.weights) in checked:
            continue
        checked.add((run.backbone, run.weights))
        try:
            methods.build_backbone(run.backbone, len(sweep.prepared.class_names), cfg.data.image_size,
                                   weights=run.weights)
        except UserError as exc:
            raise UserError(f"{where}: backbones: {exc}") from None
    if cfg.run.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError(f"{where}: run.executor: 'ray' needs Ray installed (pip install 'ray[default]'), "
                            "or use run.executor: local") from None
        return None
    try:
        device = resolve_device(cfg.run.device)
    except RuntimeError as exc:
        raise UserError(f"{where}: {exc}") from None
    check_compile(cfg, device.type)
    return device


def check_compile(cfg: Experiment, device_type: str) -> None:
    """torch.compile generates kernels for this machine's compiler and CPU: not portable numerics."""
    if cfg.train.compile and device_type == "cpu" and numerics.effective_mode(cfg.train.numerics) == "portable":
        raise UserError(f"{cfg.source}: train.compile: true on the CPU needs train.numerics: native (compiled kernels "
                        "are generated for this machine's compiler and CPU, so their numbers are not portable)")


def write_experiment_files(sweep: Sweep, trials: list[RunSpec] = ()) -> None:
    """Create the output folder, (re)write config.resolved.yaml and folds.json, and tidy what a killed process left
    (temp files, the resume checkpoint and lease of a run it had just recorded) or what got damaged (moved aside).
    `trials`: the tuning trials known so far, planned with the fixed runs."""
    sweep.store.create(f"{sweep.cfg.source}: run.output")
    with sweep.store.locked():
        mark_output(sweep.store.root, sweep.cfg.name)
        sweep.store.remove_temp_files()
        sweep.store.set_aside_damaged()
        atomic_write_text(sweep.store.root / "config.resolved.yaml", yaml.safe_dump(sweep.cfg.model_dump(), sort_keys=False))
        save_folds(sweep.store.root / "folds.json", sweep.prepared.files, sweep.prepared.folds)
        sweep.store.write_plan([run.run_id for run in sweep.runs + trials])
    for run in [*sweep.runs, *trials]:
        if sweep.status_of(run) == "done":
            sweep.store.run(run.run_id).drop_last()
            if sweep.store.lease_path(run.run_id).exists() and sweep.store.acquire(run.run_id):
                sweep.store.release(run.run_id)


def run_sweep(cfg: Experiment, only: dict | None = None, retry_failed: bool = False, show_progress: bool = True,
              eta: bool = False) -> dict:
    """Run every pending run; returns counts. Finished runs are skipped, interrupted ones resume. `eta`: time a few
    steps per model first (the cost estimator) and show the time left on the sweep bar.

    Everything the input can get wrong is checked before the output folder is created or touched.
    """
    wall = time.perf_counter()
    numerics.prepare_environment(cfg.train.numerics, cfg.train.threads)
    sweep = open_sweep(cfg)
    executor = make_executor(cfg, check_sweep(sweep, only))
    with executor.session():
        counts = _run_pending(sweep, select(sweep.runs, only or {}), executor, retry_failed, show_progress, only,
                              eta and show_progress)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts["wall_time_s"] = time.perf_counter() - wall
    counts["peak_rss_mib"] = peak_mib
    return counts


def _run_pending(sweep: Sweep, runs: list[RunSpec], executor: Executor, retry_failed: bool,
                 show_progress: bool, only: dict | None = None, eta: bool = False) -> dict:
    """Create the output folder and train the pending runs among `runs` with `executor`, then the tuning trials."""
    cfg = sweep.cfg
    tuning = resolve_tuning(cfg, sweep.prepared.class_names)
    trials = frontier(sweep, tuning, retry_failed) if tuning else None
    write_experiment_files(sweep, trials.known if trials else [])
    with tracking(sweep):
        return _train_all(sweep, runs, executor, retry_failed, show_progress, only, tuning, eta)


@contextlib.contextmanager
def tracking(sweep: Sweep) -> Iterator[None]:
    """Trackers for the sweep (run.trackers): catch up on runs recorded before, log each new one, catch up at the end."""
    cfg = sweep.cfg
    if not cfg.run.trackers:
        yield
        return
    trackers = open_trackers(cfg.run.trackers, sweep.store.root, cfg.name, cfg.model_dump(), cfg.run.tracking_uri)

    def sync(records: list[dict]) -> None:
        trackers.sync(records, sweep.store.read_history)

    sync(sweep.store.current_records()[0])
    sweep.on_recorded = lambda record: sync([record])
    try:
        yield
    finally:
        sweep.on_recorded = None
        sync(sweep.store.current_records()[0])
        trackers.close()


def _train_all(sweep: Sweep, runs: list[RunSpec], executor: Executor, retry_failed: bool, show_progress: bool,
               only: dict | None, tuning: Tuning | None, eta: bool = False) -> dict:
    cfg = sweep.cfg
    todo = [r for r in pending_runs(sweep, retry_failed) if r in runs]
    print(f"{cfg.name}: {len(runs)} runs, {len(runs) - len(todo)} already finished, {len(todo)} to run on "
          f"{executor.describe(len(todo))}", file=sys.stderr)
    sweep.eta = _eta(sweep, todo, executor) if eta else None
    counts = {"done": 0, "failed": 0, "skipped": len(runs) - len(todo), "busy": 0}
    _note_missing_checkpoints(sweep, [r for r in runs if r not in todo])
    try:
        _add(counts, executor.run(sweep, todo, retry_failed, show_progress))
    finally:  # once per sweep (a per-run rebuild is quadratic in the sweep's size); also after Ctrl-C
        sweep.eta = None
        sweep.store.rebuild_tables()
    if tuning:
        _tune(sweep, tuning, executor, counts, retry_failed, show_progress, only or {})
    return counts


def _eta(sweep: Sweep, todo: list[RunSpec], executor: Executor):
    """The cost estimator's time left for `todo` on the local executor (None for Ray or a single run)."""
    from benchmark.estimate import Eta, format_duration, run_estimates
    from benchmark.executors.local import LocalExecutor

    if not isinstance(executor, LocalExecutor) or len(todo) < 2:
        return None
    workers = executor.workers(len(todo))
    try:
        eta = Eta(run_estimates(sweep, todo, executor.device), workers)
    except Exception:  # noqa: BLE001 - a method that fails in the probe fails in its runs, recorded there
        return None
    print(f"estimate: ≈ {format_duration(sum(eta.seconds.values()) / workers)} wall with {workers} worker(s) "
          "(a few timed steps per model; the bar corrects it by the pace of the finished runs)", file=sys.stderr)
    return eta


def _note_missing_checkpoints(sweep: Sweep, finished: list[RunSpec]) -> None:
    """Finished runs whose checkpoint is gone still count (their records are the results); explain needs it: said."""
    missing = [r.run_id for r in finished
               if sweep.status_of(r) == "done" and not sweep.store.run(r.run_id).has_best()]
    if missing:
        print(f"{sweep.cfg.name}: {len(missing)} finished run(s) without a checkpoint (best.pt; e.g. {missing[0]}): "
              "they count as done and in reports; explain cannot use them (train them again into another run.output "
              "to explain them)", file=sys.stderr)


def _add(counts: dict, more: dict) -> None:
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value


def _tune(sweep: Sweep, tuning: Tuning, executor: Executor, counts: dict, retry_failed: bool,
          show_progress: bool, only: dict) -> None:
    """Train the tuning trials wave by wave: the next trial of every study, until each has its budget."""
    attempted: set[str] = set()
    studies_total = len(studies(sweep.cfg, tuning, sweep.runs))
    first = True
    while True:
        trials = frontier(sweep, tuning, retry_failed, frozenset(attempted))
        sweep.store.write_plan([run.run_id for run in sweep.runs + trials.known])
        wave = [run for run in select(trials.pending, only) if run.run_id not in attempted]
        if first:
            counts["skipped"] += len(select(trials.known, only)) - len(wave)
            print(f"{sweep.cfg.name}: tuning {studies_total} studies × {tuning.trials} trials "
                  f"({tuning.sampler}, scored by {tuning.metric} on the inner validation)", file=sys.stderr)
            first = False
        if not wave:
            return
        print(f"tuning: {len(wave)} trial runs (trial {min(r.trial for r in wave) + 1}"
              f"-{max(r.trial for r in wave) + 1} of {tuning.trials})", file=sys.stderr)
        result = executor.run(sweep, wave, retry_failed, show_progress)
        _add(counts, result)
        attempted.update(run.run_id for run in wave)
        sweep.store.rebuild_tables()
        if result.get("busy", 0) == len(wave):
            print("tuning: the next trials are being trained by another process; run again to continue", file=sys.stderr)
            return
