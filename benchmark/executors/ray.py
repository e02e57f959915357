"""Run a sweep's pending runs as Ray tasks: one task per run with its CPU/GPU request, records written by the driver.

The driver holds each run's lease while its task is queued or running, writes the record the task returns (the runner
rebuilds the tables once the runs are done), so resume, `status` and `report` work exactly as with the local executor. Workers read the
data and write checkpoints at the same paths as the driver: data and output folders must be on a shared file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator

import pandas as pd
from tqdm import tqdm

import methods
from benchmark import numerics
from benchmark.dataset import Prepared, prepare
from benchmark.errors import UserError
from benchmark.execution import make_record, save_result, train_and_record
from benchmark.experiment import Experiment, Ray
from benchmark.plan import RunSpec
from benchmark.store import Store
from benchmark.sweep import Sweep, claim
from benchmark.train import resolve_device

HEARTBEAT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
PASSED_ENV = ("SOLDERBENCH_CACHE",)
_prepared: dict[str, Prepared] = {}


def _prepared_in_worker(cfg: Experiment, expected: dict[str, str]) -> Prepared:
    """The prepared data of this config, made once per worker process, checked to be the driver's data and folds."""
    key = json.dumps(cfg.model_dump(include={"data", "protocol"}), sort_keys=True, default=str)
    if key not in _prepared:
        _prepared[key] = prepare(cfg)
    prepared = _prepared[key]
    found = {"scan": prepared.scan_fingerprint, "folds": prepared.folds_fingerprint}
    if found != expected:
        raise RuntimeError(
            f"data at {cfg.data.root} on host {os.uname().nodename} differs from the driver's "
            f"(fingerprints {found} vs {expected}); workers need the same data at the same path"
        )
    return prepared


def train_task(cfg: Experiment, run: RunSpec, output: str, expected: dict[str, str],
               env: dict[str, str]) -> tuple[dict, pd.DataFrame | None]:
    """Body of one Ray task: train `run` in this worker, checkpoints under `output`; returns (record, history)."""
    os.environ.update(env)
    numerics.enter(cfg.train.numerics, cfg.train.threads or max(1, int(cfg.run.ray.num_cpus_per_run)),
                   resolve_device(cfg.run.device).type)
    methods.load_plugins(cfg.plugins, cfg.folder)
    prepared = _prepared_in_worker(cfg, expected)
    sweep = Sweep(cfg, Store(output), prepared, [])
    return train_and_record(sweep, run, resolve_device(cfg.run.device), show_progress=False)


def connect(address: str | None, where: str = "run.ray.address") -> bool:
    """Join the Ray cluster at `address` (auto, ray://...), or start a local instance; True if this call started it.

    A cluster that cannot be reached → UserError naming the address.
    """
    import ray

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": "ERROR"}
    try:
        if address and address != "auto" and not address.startswith("ray://"):
            _check_reachable(address)
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        lines = str(exc).strip().splitlines()
        raise UserError(f"{where}: cannot {'connect to Ray at ' + repr(address) if address else 'start Ray'} "
                        f"({lines[0] if lines else type(exc).__name__}); start the cluster first (ray start --head) "
                        "or leave run.ray.address empty for a local instance") from None
    return True


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable HOST:PORT for ever; fail fast instead (ConnectionError)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} ({exc.strerror or exc})") from None


def check_fits(ray_cfg: Ray, where: str) -> None:
    """A run asking more CPUs or GPUs than the largest node of the cluster has would wait for ever: refused."""
    import ray

    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    for key, asked in (("CPU", ray_cfg.num_cpus_per_run), ("GPU", ray_cfg.num_gpus_per_run)):
        largest = max((resources.get(key, 0.0) for resources in nodes), default=0.0)
        if asked > largest:
            field = f"num_{key.lower()}s_per_run"
            raise UserError(f"{where}: run.ray.{field}: {asked:g} {key}s per run, but the largest node of the Ray "
                            f"cluster has {largest:g}; a run would wait for ever: lower run.ray.{field} to at most "
                            f"{largest:g}, or add a node that large first")


@contextlib.contextmanager
def ray_session(address: str | None, where: str = "run.ray.address") -> Iterator[None]:
    """Connected to Ray for the duration; a local instance started here is shut down at the end."""
    import ray

    started = connect(address, where)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _failure_reason(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _window(resources: dict, ray_cfg: Ray) -> int:
    """How many runs to keep submitted at once: twice what the cluster can run at the same time.

    Runs are claimed (leased) only when submitted, so another process on the same experiment can take the rest.
    """
    slots = resources.get("CPU", 1.0) / ray_cfg.num_cpus_per_run
    if ray_cfg.num_gpus_per_run > 0:
        slots = min(slots, resources.get("GPU", 0.0) / ray_cfg.num_gpus_per_run)
    return max(2, 2 * int(slots))


def run_on_ray(sweep: Sweep, todo: list[RunSpec], retry_failed: bool = False, show_progress: bool = True) -> dict:
    """Train `todo` as Ray tasks (inside `ray_session`); returns counts {done, failed, busy}. A run whose worker died
    is retried `run.ray.max_retries` times (resuming from its last checkpoint), then recorded failed."""
    import ray

    ray_cfg = sweep.cfg.run.ray
    caps = {k: os.environ[k] for k in numerics.PORTABLE_ENV if k in os.environ}
    task = ray.remote(train_task).options(
        num_cpus=ray_cfg.num_cpus_per_run, num_gpus=ray_cfg.num_gpus_per_run,
        max_retries=ray_cfg.max_retries, retry_exceptions=False,
        runtime_env={"env_vars": caps} if caps else None,  # set when the worker process starts, before torch runs
    )
    output = str(sweep.store.root.resolve())
    expected = {"scan": sweep.prepared.scan_fingerprint, "folds": sweep.prepared.folds_fingerprint}
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    cfg_ref = ray.put(sweep.cfg)
    counts = {"done": 0, "failed": 0, "busy": 0}
    in_flight: dict = {}
    queue = list(todo)
    window = _window(ray.cluster_resources(), ray_cfg)
    bar = tqdm(total=len(todo), desc="sweep (ray)", unit="run", file=sys.stderr, disable=not show_progress)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < window:
                run = queue.pop(0)
                if claim(sweep, run, retry_failed):
                    in_flight[task.remote(cfg_ref, run, output, expected, env)] = (run, time.perf_counter())
                else:
                    counts["busy"] += 1
                    bar.update()
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=HEARTBEAT_S)
            for run, _tick in in_flight.values():
                sweep.store.heartbeat(run.run_id)
            for ref in ready:
                run, tick = in_flight.pop(ref)
                try:
                    record, history = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    record, history = make_record(sweep, run, "failed", _failure_reason(exc), None,
                                                  time.perf_counter() - tick, "ray"), None
                try:
                    save_result(sweep, record, history)
                finally:
                    sweep.store.release(run.run_id)
                counts[record["status"]] += 1
                sweep.recorded(record)
                bar.set_postfix_str(f"{run.method} {run.backbone} fold {run.fold}: {record['status']}")
                bar.update()
    finally:
        bar.close()
        for ref, (run, _tick) in in_flight.items():
            ray.cancel(ref, force=True)
            sweep.store.release(run.run_id)
    return counts


class RayExecutor:
    """One Ray task per run on a cluster (or a local Ray instance), records written by the driver."""

    def __init__(self, cfg: Experiment):
        self.cfg = cfg

    def describe(self, pending: int) -> str:
        return f"Ray ({self.cfg.run.ray.address or 'local instance'})"

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Connected to the cluster, refused before anything is written if a run fits no node."""
        with ray_session(self.cfg.run.ray.address, f"{self.cfg.source}: run.ray.address"):
            check_fits(self.cfg.run.ray, self.cfg.source)
            yield

    def run(self, sweep: Sweep, todo: list[RunSpec], retry_failed: bool, show_progress: bool) -> dict:
        return run_on_ray(sweep, todo, retry_failed, show_progress)
