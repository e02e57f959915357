"""What a sweep will cost here: a short timing probe per backbone (and per method that changes the model), scaled
to every pending run's epochs, training and evaluation images, and divided among the local workers."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass

import torch

from benchmark import numerics
from benchmark.experiment import Experiment
from benchmark.plan import RunSpec
from benchmark.rundir import RunDir
from benchmark.train import FoldData, Trainer, batch_starts, timed

PROBE_STEPS = 8
WARMUP_STEPS = 1
PROBE_BUDGET_S = 3.0


@dataclass(frozen=True)
class Probe:
    """Seconds per training step, per evaluated image, per epoch's checkpoint and to build the run's model."""

    step_s: float
    eval_image_s: float
    checkpoint_s: float
    setup_s: float = 0.0


@dataclass(frozen=True)
class BackboneCost:
    backbone: str
    runs: int
    pending: int
    run_s: float  # sum over the pending runs, one after another on one worker


def probe(run: RunSpec, cfg: Experiment, prepared, device: torch.device) -> Probe:
    """A few real training steps and one evaluation batch of `run`'s model on fold 0, at the experiment's settings.

    Warm-up steps first (kernel set-up), then up to PROBE_STEPS timed steps, fewer for a slow model once
    PROBE_BUDGET_S is spent (at least two), so pricing a large sweep takes seconds per model, not minutes."""
    fold = prepared.folds[0]
    eval_images = cfg.train.eval_batch_size
    fold = dataclasses.replace(fold, val=fold.val[:eval_images], test=fold.test[:eval_images])
    tick = time.perf_counter()
    data = FoldData(prepared, fold, device, cfg.train.channels_last)
    trainer = Trainer(run, cfg, data, len(prepared.class_names))
    setup_s = time.perf_counter() - tick
    batches = trainer.epoch_batches(steps=WARMUP_STEPS + PROBE_STEPS)
    trainer.train_epoch(0, batches=batches[:WARMUP_STEPS])
    spent: list[float] = []
    for batch in batches[WARMUP_STEPS:] or batches:
        spent.append(timed(lambda batch=batch: trainer.train_epoch(0, batches=[batch]), device))
        if len(spent) >= 2 and sum(spent) > PROBE_BUDGET_S:
            break
    step_s = sum(spent) / len(spent)
    n_val = max(1, len(data.parts["val"][1]))
    eval_s = timed(lambda: trainer.evaluate("val"), device) / n_val
    with tempfile.TemporaryDirectory() as folder:
        checkpoint_s = timed(lambda: RunDir(folder).save_last(trainer.state()), device)
    return Probe(step_s, eval_s, checkpoint_s, setup_s)


def _probe_key(run: RunSpec, num_classes: int) -> tuple[str, str]:
    """Runs whose models cost the same: one backbone, and the method only where it replaces or extends the model
    (its `wrap_model` returns another module than the one it is given)."""
    import methods

    given = torch.nn.Identity()
    try:
        changes = methods.build(run.method, **run.method_params).wrap_model(given, num_classes) is not given
    except Exception:  # noqa: BLE001 - a method that cannot wrap a bare module builds a model of its own
        changes = True
    return run.backbone, run.method if changes else ""


def run_seconds(run: RunSpec, cfg: Experiment, prepared, cost: Probe) -> float:
    fold = next(f for f in prepared.folds if (f.repeat, f.fold) == (run.repeat, run.fold))
    batch = cfg.train.batch_size
    steps = max(1, len(batch_starts(len(fold.train), batch)))
    epoch = steps * cost.step_s + len(fold.val) * cost.eval_image_s + cost.checkpoint_s
    return cost.setup_s + cfg.train.epochs * epoch + len(fold.test) * cost.eval_image_s


def run_estimates(sweep, runs: list[RunSpec], device: torch.device) -> dict[str, float]:
    """Estimated seconds of each run on one worker; probes each distinct model once (with the experiment's threads)."""
    cfg = sweep.cfg
    try:
        numerics.enter(cfg.train.numerics, cfg.train.threads, device.type)
    except numerics.NotApplicable:  # kernels already ran natively here: the probe times native kernels
        torch.set_num_threads(numerics.effective_threads(cfg.train.numerics, cfg.train.threads) or torch.get_num_threads())
    probes: dict[tuple[str, str], Probe] = {}
    out = {}
    for run in runs:
        key = _probe_key(run, len(sweep.prepared.class_names))
        if key not in probes:
            probes[key] = probe(run, cfg, sweep.prepared, device)
        out[run.run_id] = run_seconds(run, cfg, sweep.prepared, probes[key])
    return out


def estimate(sweep, runs: list[RunSpec], pending: list[RunSpec], device: torch.device) -> list[BackboneCost]:
    """Estimated cost per backbone of the `pending` among `runs`."""
    seconds = run_estimates(sweep, pending, device)
    out = []
    for backbone in dict.fromkeys(run.backbone for run in runs):
        todo = [run for run in pending if run.backbone == backbone]
        out.append(BackboneCost(backbone, sum(run.backbone == backbone for run in runs), len(todo),
                                sum(seconds[run.run_id] for run in todo)))
    return out


class Eta:
    """Time left in a sweep: the cost estimate of the runs not finished, rescaled by how the finished ones went."""

    def __init__(self, seconds: dict[str, float], workers: int):
        self.seconds, self.workers = seconds, max(1, workers)
        self.start, self.finished = time.perf_counter(), 0.0

    def done(self, run_id: str) -> None:
        self.finished += self.seconds.pop(run_id, 0.0)

    def text(self) -> str:
        """'≈ 4 min left (cost estimate)'; after the first finished runs, corrected by their actual pace."""
        left = sum(self.seconds.values()) / self.workers
        if self.finished > 0:
            left *= (time.perf_counter() - self.start) * self.workers / self.finished
        return f"≈ {format_duration(left)} left (cost estimate)"


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cost_table(costs: list[BackboneCost], workers: int, device: torch.device, early_stopping: bool) -> str:
    """The lines `run --dry-run` prints: per backbone runs and time, then the total and the wall-time estimate."""
    width = max([len("backbone")] + [len(c.backbone) for c in costs])
    lines = [f"{'backbone':<{width}}  {'runs':>5}  {'pending':>7}  {'one worker':>10}"]
    for c in costs:
        lines.append(f"{c.backbone:<{width}}  {c.runs:>5}  {c.pending:>7}  {format_duration(c.run_s):>10}")
    total = sum(c.run_s for c in costs)
    pending = sum(c.pending for c in costs)
    bound = " at most (early stopping may end runs sooner)" if early_stopping else ""
    unit = "CPU" if device.type == "cpu" else device.type.upper()
    lines.append(
        f"total: {pending} pending of {sum(c.runs for c in costs)} runs ≈ {total / 3600:.2f} {unit}-worker-hours "
        f"({format_duration(total)} on one worker); "
        f"≈ {format_duration(total / max(1, workers))} wall with {workers} worker(s) on {device}{bound} "
        "(timing probe: a few real training steps per model here)"
    )
    return "\n".join(lines)


def pending_estimate(cfg: Experiment, runs: list[RunSpec], retry_failed: bool = False, trials: list[RunSpec] = (),
                     undrawn: list[RunSpec] = ()) -> tuple[str, float | None]:
    """The cost table of the pending runs among `runs` and the tuning trials (decodes the images and times a few steps
    per model), and the estimated seconds per pending run: what `run --dry-run` prints and `init` writes."""
    from benchmark.executors.local import resolve_workers
    from benchmark.runner import check_sweep, open_sweep, pending_runs

    sweep = open_sweep(cfg)
    device = check_sweep(sweep)
    selected = {run.run_id for run in runs}
    planned = [run for run in sweep.runs if run.run_id in selected] + list(trials) + list(undrawn)
    pending = [run for run in pending_runs(sweep, retry_failed) if run.run_id in selected]
    pending += [run for run in trials if sweep.status_of(run) == "pending"] + list(undrawn)
    if device is None:
        from benchmark.train import resolve_device

        device, workers = resolve_device("auto"), 1
    else:
        workers = resolve_workers(cfg.run.workers, cfg.train.threads, len(pending))
    costs = estimate(sweep, planned, pending, device)
    pending_n = sum(c.pending for c in costs)
    per_run = sum(c.run_s for c in costs) / pending_n if pending_n else None
    return cost_table(costs, workers, device, cfg.train.early_stopping is not None), per_run
