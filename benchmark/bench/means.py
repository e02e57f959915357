"""Micro-measurements behind docs/performance.md: one speed means at a time, everything else fixed.

`python -m benchmark.bench.means [--backbone googlenet] [--image-size 84] [--batch-size 64] [--json FILE]` times,
on random inputs of the given shape: evaluation with autograd on / torch.no_grad / torch.inference_mode at batch 8 and the eval batch size; the Adam
implementations (for-loop, foreach, fused); one epoch checkpoint (model + Adam state); the per-epoch metrics
(`classification_metrics` versus `epoch_scores`). Each figure is the median of `--repeats` timings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import methods
from benchmark.atomic import atomic_write_text
from benchmark.metrics import classification_metrics
from benchmark.rundir import RunDir
from benchmark.train import epoch_scores


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def evaluation_modes(model: torch.nn.Module, x: torch.Tensor, batch_sizes: tuple[int, ...], repeats: int) -> dict:
    """Images/s of evaluating `x` in batches, with autograd on (the reference), under no_grad and under
    inference_mode, for each batch size; the variants alternate within each repeat (paired under load)."""
    model.eval()
    modes = {"autograd_on": contextlib.nullcontext, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}
    cases = [(name, size) for size in batch_sizes for name in modes]

    def run(name: str, size: int) -> None:
        with modes[name]():
            for start in range(0, len(x), size):
                model(x[start : start + size]).sum().item()

    times: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    for case in cases:
        run(*case)
    for _ in range(repeats):
        for case in cases:
            tick = time.perf_counter()
            run(*case)
            times[case].append(time.perf_counter() - tick)
    return {f"{name}@{size}": len(x) / statistics.median(times[(name, size)]) for name, size in cases}


def adam_variants(backbone: str, image_size: int, x: torch.Tensor, repeats: int) -> dict:
    """Seconds per optimizer step alone (gradients already there) for each Adam implementation."""
    model = methods.build_backbone(backbone, 2, image_size).to(memory_format=torch.channels_last)
    model(x).sum().backward()
    out = {}
    for name, kwargs in {"for_loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}.items():
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-3, **kwargs)
        out[name] = _median_s(opt.step, repeats)
    return out


def checkpoint_seconds(backbone: str, image_size: int, x: torch.Tensor, repeats: int) -> dict:
    """Seconds and bytes of one epoch checkpoint (model + Adam state), as train_run writes it."""
    model = methods.build_backbone(backbone, 2, image_size)
    opt = torch.optim.Adam(model.parameters(), fused=True)
    model(x).sum().backward()
    opt.step()
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(tmp)
        seconds = _median_s(lambda: run.save_last({"model": model.state_dict(), "optimizer": opt.state_dict()}),
                            repeats)
        return {"seconds": seconds, "bytes": run.last_path.stat().st_size}


def metric_seconds(n: int, classes: int, repeats: int) -> dict:
    """Seconds for the full metrics versus the per-epoch selection scores on n validation predictions."""
    rng = np.random.default_rng(0)
    probs, labels = rng.dirichlet(np.ones(classes), n), rng.integers(0, classes, n)
    return {"classification_metrics": _median_s(lambda: classification_metrics(probs, labels, 1), repeats),
            "epoch_scores": _median_s(lambda: epoch_scores(probs, labels, 1), repeats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.bench.means", description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="googlenet")
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    size = args.image_size
    x = torch.randn(args.batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
    x_eval = torch.randn(args.eval_batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
    model = methods.build_backbone(args.backbone, 2, size).to(memory_format=torch.channels_last)
    result = {
        "settings": vars(args) | {"json": str(args.json), "threads": torch.get_num_threads()},
        "eval_images_per_s": evaluation_modes(model, x_eval, (8, args.eval_batch_size), args.repeats),
        "adam_step_s": adam_variants(args.backbone, size, x, args.repeats),
        "checkpoint": checkpoint_seconds(args.backbone, size, x, args.repeats),
        "metrics_s": metric_seconds(508, 2, args.repeats),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
