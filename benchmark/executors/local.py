"""Run a sweep's pending runs on this machine: in this process (one worker) or in `run.workers` worker processes.

Worker processes share the sweep through the runs' leases exactly as independent `run` processes would, so crash
safety, resume and `status` are the same; each sends one message per run to the parent, which draws the single
sweep bar. A worker dies with its parent (kill -9 included): its run's lease is then free for the next `run`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import sys
import time

import torch
from tqdm import tqdm

from benchmark import numerics
from benchmark.execution import execute_run
from benchmark.experiment import Experiment
from benchmark.lifetime import die_with_parent
from benchmark.plan import RunSpec
from benchmark.sweep import claim, open_sweep

WORKER_LOG_DIR = "logs"
_WARNED: set[tuple[int, int | None]] = set()  # oversubscription said once per process


def resolve_workers(workers: int | str, threads: int | None, pending: int) -> int:
    """`auto`: the machine's cores ÷ threads per run (threads unset: all cores, so one worker); never more than runs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if workers == "auto":
        workers = max(1, cores // threads) if threads else 1
    workers = max(1, min(int(workers), pending))
    if workers > 1 and workers * (threads or 1) > cores and (workers, threads) not in _WARNED:
        _WARNED.add((workers, threads))
        print(f"warning: run.workers {workers} × train.threads {threads or 1} = {workers * (threads or 1)} threads on "
              f"{cores} cores: the runs slow each other down (several times over); use run.workers: auto or fewer "
              "workers", file=sys.stderr)
    return workers


class LocalExecutor:
    """This machine: one run at a time in this process, or `run.workers` worker processes."""

    def __init__(self, cfg: Experiment, device: torch.device):
        self.cfg, self.device = cfg, device

    def workers(self, pending: int) -> int:
        return resolve_workers(self.cfg.run.workers, self.cfg.train.threads, pending)

    def describe(self, pending: int) -> str:
        workers = self.workers(pending)
        return str(self.device) + (f" in {workers} worker processes" if workers > 1 else "")

    def session(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def run(self, sweep, todo: list[RunSpec], retry_failed: bool, show_progress: bool) -> dict:
        workers = self.workers(len(todo))
        if workers > 1 or (todo and not self._numerics_here()):
            return run_parallel(sweep, todo, self.device, workers, retry_failed, show_progress)
        return run_serial(sweep, todo, self.device, retry_failed, show_progress)

    def _numerics_here(self) -> bool:
        """Whether this process can train with the config's numerics (not when it already ran kernels without the
        portable caps: then one fresh worker process trains)."""
        try:
            enter_numerics(self.cfg, self.device)
        except numerics.NotApplicable:
            return False
        return True


def enter_numerics(cfg: Experiment, device: torch.device) -> dict:
    """This process's numerics and threads for training runs of `cfg` (see benchmark.numerics)."""
    return numerics.enter(cfg.train.numerics, cfg.train.threads, device.type)


def train_if_free(sweep, run: RunSpec, device: torch.device, retry_failed: bool, show_progress: bool | str,
                  on_start=lambda run: None) -> dict | None:
    """Claim `run`, train and record it and release it; None if another process has it. The tables are rebuilt
    once per sweep (or tuning wave) by the runner, not per run: a per-run rebuild is quadratic in the sweep's size."""
    if not claim(sweep, run, retry_failed):
        return None
    on_start(run)
    try:
        record = execute_run(sweep, run, device, show_progress)
    finally:
        sweep.store.release(run.run_id)
    sweep.recorded(record)
    return record


def run_serial(sweep, todo: list[RunSpec], device: torch.device, retry_failed: bool, show_progress: bool) -> dict:
    """Train `todo` one after another in this process."""
    counts = {"done": 0, "failed": 0, "busy": 0}
    bar = tqdm(todo, desc="sweep", unit="run", file=sys.stderr, disable=not show_progress)
    for run in bar:
        bar.set_postfix_str(_label(run) + (f"; {sweep.eta.text()}" if sweep.eta else ""))
        record = train_if_free(sweep, run, device, retry_failed, show_progress)
        counts["busy" if record is None else record["status"]] += 1
        if sweep.eta:
            sweep.eta.done(run.run_id)
    return counts


def _label(run: RunSpec) -> str:
    return f"{run.method} {run.backbone} fold {run.fold}"


def run_parallel(sweep, todo: list[RunSpec], device: torch.device, workers: int, retry_failed: bool,
                 show_progress: bool) -> dict:
    """Train `todo` in `workers` spawned processes; returns counts (runs no worker could take count as busy)."""
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    log_dir = sweep.store.root / WORKER_LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = [
        ctx.Process(target=_worker, name=f"solderbench-worker-{i}", daemon=True,
                    args=(sweep.cfg, todo, str(device), retry_failed, messages, str(log_dir / f"worker-{i}.log"),
                          os.getpid()))
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    finished: dict[str, str] = {}
    running: dict[int, str] = {}
    bar = tqdm(total=len(todo), desc=f"sweep ({workers} workers)", unit="run", file=sys.stderr,
               disable=not show_progress)
    try:
        while len(finished) < len(todo):
            try:
                kind, worker, run_id, value = messages.get(timeout=1.0)
            except queue.Empty:
                if not any(proc.is_alive() for proc in procs):
                    break
                continue
            if kind == "start":
                running[worker] = value
            elif kind == "end":
                finished[run_id] = value
                running.pop(worker, None)
                if sweep.eta:
                    sweep.eta.done(run_id)
                bar.update(1)
                record = sweep.store.read_record(run_id)
                if record is not None:
                    sweep.recorded(record)
            elif kind == "exit":
                running.pop(worker, None)
            bar.set_postfix_str("; ".join([running[w] for w in sorted(running)] + ([sweep.eta.text()] if sweep.eta else [])))
    finally:
        bar.close()
        for proc in procs:
            proc.join(timeout=None if len(finished) == len(todo) else 5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    for i, proc in enumerate(procs):
        if proc.exitcode not in (0, None):
            print(f"warning: worker {i} ended with exit code {proc.exitcode} (log: {log_dir / f'worker-{i}.log'}); "
                  "its run stays pending: run the same command again to resume it", file=sys.stderr)
    statuses = list(finished.values())
    return {"done": statuses.count("done"), "failed": statuses.count("failed"), "busy": len(todo) - len(finished)}


def _log(text: str) -> None:
    """One time-stamped line in this worker's log."""
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def _started(messages, worker: int, run: RunSpec) -> None:
    _log(f"{run.run_id} {_label(run)}: started")
    messages.put(("start", worker, run.run_id, _label(run)))


def _worker(cfg: Experiment, runs: list[RunSpec], device: str, retry_failed: bool, messages, log: str, parent: int) -> None:
    """Worker body: open the same sweep, then claim and train the given runs in order until none is left."""
    die_with_parent(parent)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    worker = int(multiprocessing.current_process().name.rsplit("-", 1)[-1])
    enter_numerics(cfg, torch.device(device))
    sweep = open_sweep(cfg)
    for run in runs:
        record = train_if_free(sweep, run, torch.device(device), retry_failed, show_progress="lines",
                               on_start=lambda run: _started(messages, worker, run))
        if record is not None:
            _log(f"{run.run_id} {_label(run)}: {record['status']} in {record['wall_time_s']:.1f} s"
                 + (f" ({record['error']})" if record["status"] != "done" else ""))
            messages.put(("end", worker, run.run_id, record["status"]))
    messages.put(("exit", worker, "", ""))
