"""Wall time of one sweep on a local Ray instance with W workers (W CPUs, one CPU per run), and with the local
executor for comparison. Each W runs the sweep twice: with fresh workers (each imports torch on its first task)
and again, into a new folder, with the same workers already warm.

    python scripts/ray_scaling.py --workers 1 2 --methods 4 --folds 3 --epochs 6
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ray
import yaml

from benchmark.config import load_config
from benchmark.dataset import prepare
from benchmark.runner import run_sweep
from benchmark.store import load_results


def experiment(folder: Path, n_methods: int, folds: int, epochs: int) -> Path:
    alphas = [round(0.1 + 0.8 * i / max(n_methods - 2, 1), 2) for i in range(n_methods - 1)]
    cfg = {
        "name": "ray-scaling",
        "data": {"root": "synthetic", "synthetic": {"n": 600, "seed": 0, "size": 32}, "image_size": 32,
                 "classes": {"normal": ["normal"], "defective": ["excessive_solder", "insufficient_solder",
                                                                 "shifted_component", "short"]},
                 "positive": "defective"},
        "protocol": {"folds": folds, "seed": 1},
        "train": {"epochs": epochs, "batch_size": 32, "threads": 1},
        "methods": ["ce", {"name": "alpha_js", "alpha": alphas}],
        "backbones": ["tiny_cnn"],
        "run": {"device": "cpu", "ray": {"num_cpus_per_run": 1, "max_retries": 1}},
    }
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def timed_sweep(path: Path, output: Path, executor: str) -> tuple[float, int, float]:
    """(sweep wall time, runs done, mean number of runs in progress at once)."""
    cfg = load_config(path, [f"run.executor={executor}", f"run.output={output}"])
    tick = time.perf_counter()
    counts = run_sweep(cfg, show_progress=False)
    wall = time.perf_counter() - tick
    return wall, counts["done"], float(load_results(output)["wall_time_s"].sum()) / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--methods", type=int, default=4)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    print(f"load average (1, 5, 15 min) at the start: {os.getloadavg()}, CPUs: {os.cpu_count()}")
    work = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    path = experiment(work, args.methods, args.folds, args.epochs)
    os.environ["SOLDERBENCH_CACHE"] = str(work / "cache")
    prepare(load_config(path))  # generate and decode the synthetic images once, outside the timings
    wall, done, _ = timed_sweep(path, work / "local", "local")
    print(f"local executor (1 process, 1 thread): {done} runs in {wall:.1f} s")
    results = {}
    for workers in args.workers:
        tick = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        start = time.perf_counter() - tick
        for state in ("cold", "warm"):
            wall, done, parallel = timed_sweep(path, work / f"ray-{workers}-{state}", "ray")
            results[workers, state] = wall
            print(f"ray, W={workers}, {state} workers: {done} runs in {wall:.1f} s, {parallel:.2f} runs in progress "
                  f"on average (Ray start {start:.1f} s, not included)")
        ray.shutdown()
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}, CPUs: {os.cpu_count()}")
    for (workers, state), wall in results.items():
        if (1, state) in results:
            print(f"{state} workers: wall time ratio W=1 / W={workers} = {results[1, state] / wall:.2f}")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
