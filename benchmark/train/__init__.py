"""Training one run, by job: the device (device.py), the fold's batches (batches.py), the trainer and its method
(trainer.py), evaluation (evaluation.py), the epoch loop with selection, checkpoints and test (loop.py).

The names below are what the rest of the code imports (`from benchmark.train import train_run`).
"""

from benchmark.train.batches import (
    FoldData,
    augment_batch,
    batch_starts,
    channel_stats,
    check_batches,
    draw_augmentations,
)
from benchmark.train.device import resolve_device, set_deterministic, synchronize, timed, to_device
from benchmark.train.evaluation import RunFailed, epoch_scores, evaluate, require_finite, scored
from benchmark.train.loop import MAXIMIZE, Checkpoints, RunResult, run_epoch, train_run
from benchmark.train.trainer import Trainer, build_model, run_seed

__all__ = [
    "MAXIMIZE", "Checkpoints", "FoldData", "RunFailed", "RunResult", "Trainer", "augment_batch", "batch_starts",
    "build_model", "channel_stats", "check_batches", "draw_augmentations", "epoch_scores", "evaluate",
    "require_finite", "resolve_device", "run_epoch", "run_seed", "scored", "set_deterministic", "synchronize", "timed",
    "to_device", "train_run",
]
