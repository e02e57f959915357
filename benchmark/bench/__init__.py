"""`python -m benchmark bench`: how fast training runs here, against the model's own ceiling and the reference script.

`run_bench(opts, steps, warmup, reference_epoch)` returns the result dict that `bench` prints and writes as JSON.
"""

from __future__ import annotations

import os

from benchmark.bench.reference import run_reference
from benchmark.bench.report import format_table, machine, write_json
from benchmark.bench.setup import BenchOptions, prepare_bench_data
from benchmark.bench.throughput import peak_memory, run_throughput
from benchmark.errors import UserError
from benchmark.train import resolve_device

__all__ = ["BenchOptions", "format_table", "run_bench", "write_json"]


def run_bench(opts: BenchOptions, steps: int = 20, warmup: int = 3, reference_epoch: bool = False,
              show_progress: bool = True) -> dict:
    """Prepare the data (timed), then either the throughput figures or the reference-epoch comparison."""
    try:
        device = resolve_device(opts.device)
    except RuntimeError as exc:
        raise UserError(f"--device {opts.device}: {exc}") from None
    settings = {**opts.__dict__, "augment": list(opts.augment), "steps": steps, "warmup": warmup,
                "reference_epoch": reference_epoch}
    result = {"settings": settings, "device": str(device), "machine": machine()}
    bench = prepare_bench_data(opts)
    result["preparation"] = bench.preparation
    if reference_epoch:
        result["epoch"] = run_reference(bench, device, show_progress)
        result["memory"] = peak_memory(device)
    else:
        result.update(run_throughput(bench, device, steps, warmup, show_progress))
    result["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return result
