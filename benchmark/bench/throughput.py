"""Training images/s through the real pipeline versus the model's own ceiling, evaluation images/s, peak memory."""

from __future__ import annotations

import functools
import resource
import statistics
import sys
import time

import torch
from tqdm import tqdm

from benchmark.bench.setup import BenchData
from benchmark.errors import UserError
from benchmark.plan import RunSpec
from benchmark.train import FoldData, Trainer, synchronize, timed

MIN_ROUNDS = 8  # timed blocks per path; the efficiency is the median of the per-block ratios


def bench_trainer(bench: BenchData, device: torch.device, method: str = "ce") -> Trainer:
    """The Trainer `train_run` would build for this config and split (method `ce`, seed 0)."""
    cfg = bench.cfg
    spec = RunSpec("bench", "bench", method, {}, cfg.backbones[0], None, 0, 0, 0)
    data = FoldData(bench.prepared, bench.fold, device, cfg.train.channels_last)
    return Trainer(spec, cfg, data, len(bench.prepared.class_names))


def peak_memory(device: torch.device) -> dict:
    """Peak resident memory of this process (MiB) and, on CUDA, the peak of torch's allocations on the GPU."""
    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def measure_training(trainer: Trainer, steps: int, warmup: int, show_progress: bool = True) -> dict:
    """Alternate blocks of real steps (`Trainer.train_epoch`: gather from the uint8 images, augment, normalize,
    step) and ceiling steps (`Trainer.fit_batch` on one float batch already in memory); compare their medians.

    Each round draws a whole epoch's batches (`Trainer.epoch_batches`, timed) and trains on the first block of
    them; the drawing is charged to the real steps at its real rate, its time divided by the steps of an epoch."""
    batch = trainer.batch_size
    full_batches = trainer.n_train // batch
    if full_batches < 1:
        raise UserError(f"--batch-size {batch} is larger than the training part ({trainer.n_train} images)")
    block = max(1, min(steps // MIN_ROUNDS, full_batches))
    rounds = max(1, steps // block)
    x, y = trainer.make_batch(*trainer.epoch_batches(steps=1)[0])
    x, y = x.clone(), y.clone()
    device = trainer.device

    def ceiling() -> None:
        for _ in range(block):
            trainer.fit_batch(x, y)
        synchronize(device)

    for _ in range(max(1, warmup)):
        trainer.train_epoch(0, batches=trainer.epoch_batches(steps=1))
        trainer.fit_batch(x, y)
    real_s, ceiling_s, draw_s = [], [], []
    for _ in tqdm(range(rounds), desc="training steps", unit="round", file=sys.stderr, leave=False,
                  disable=not show_progress):
        synchronize(device)
        tick = time.perf_counter()
        batches = trainer.epoch_batches()
        synchronize(device)
        draw_s.append(time.perf_counter() - tick)
        block_s = timed(functools.partial(trainer.train_epoch, 0, batches=batches[:block]), device)
        real_s.append((block_s + draw_s[-1] * block / len(batches)) / block)
        ceiling_s.append(timed(ceiling, device) / block)
    real_step, ceiling_step = statistics.median(real_s), statistics.median(ceiling_s)
    return {
        "batch_size": batch,
        "timed_steps": rounds * block,
        "pipeline_step_s": real_step,
        "ceiling_step_s": ceiling_step,
        "pipeline_images_per_s": batch / real_step,
        "ceiling_images_per_s": batch / ceiling_step,
        "pipeline_efficiency": statistics.median(c / r for c, r in zip(ceiling_s, real_s, strict=True)),
        "epoch_batches_s": statistics.median(draw_s),
        "pipeline_round_step_s": real_s,
        "ceiling_round_step_s": ceiling_s,
    }


def measure_evaluation(trainer: Trainer, repeats: int = 2) -> dict:
    """Images/s of `Trainer.evaluate` on the validation part (inference mode, eval batch size); median of repeats."""
    n = len(trainer.data.parts["val"][1])
    trainer.evaluate("val")
    seconds = statistics.median(timed(lambda: trainer.evaluate("val"), trainer.device) for _ in range(repeats))
    return {"eval_batch_size": trainer.eval_batch_size, "n_images": n, "seconds": seconds, "images_per_s": n / seconds}


def run_throughput(bench: BenchData, device: torch.device, steps: int, warmup: int, show_progress: bool = True) -> dict:
    """The pipeline-versus-ceiling training figures, evaluation throughput and peak memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = bench_trainer(bench, device)
    train = measure_training(trainer, steps, warmup, show_progress)
    evaluation = measure_evaluation(trainer)
    evaluation["eval_to_train"] = evaluation["images_per_s"] / train["pipeline_images_per_s"]
    return {"train": train, "eval": evaluation, "memory": peak_memory(device)}
