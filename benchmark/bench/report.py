"""The bench's printed table and its JSON file (written atomically)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from benchmark.atomic import atomic_write_text


def machine() -> dict:
    """Where the figures were taken: CPU count, torch threads, versions and the load average (1, 5, 15 min)."""
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def _rows(result: dict) -> list[tuple[str, str]]:
    rows = [("device", result["device"]), ("load average at start (1/5/15 min)", str(result["machine"]["load_average"]))]
    prep = result.get("preparation")
    if prep:
        rows += [
            ("images decoded + resized (cold cache)", f"{prep['n_images']} in {prep['decode_cold_s']:.2f} s "
                                                      f"({prep['decode_images_per_s']:.0f} images/s)"),
            ("load from the decoded cache", f"{prep['load_cached_s']:.3f} s"),
            ("cache size / raw uint8 size", f"{prep['cache_to_raw']:.4f} ({prep['cache_bytes'] / 2**20:.1f} MiB)"),
        ]
    train = result.get("train")
    if train:
        rows += [
            ("training images/s, real pipeline", f"{train['pipeline_images_per_s']:.1f}"),
            ("training images/s, ceiling (fixed float batch)", f"{train['ceiling_images_per_s']:.1f}"),
            ("pipeline efficiency (ceiling time / real time)", f"{train['pipeline_efficiency']:.3f}"),
        ]
    evaluation = result.get("eval")
    if evaluation:
        rows += [
            (f"evaluation images/s (batch {evaluation['eval_batch_size']})", f"{evaluation['images_per_s']:.1f}"),
            ("evaluation / training throughput", f"{evaluation['eval_to_train']:.2f}x"),
        ]
    epoch = result.get("epoch")
    if epoch:
        rows += [
            ("reference epoch (ImageFolder, decode every epoch)", f"{epoch['reference']['epoch_s']:.1f} s"),
            ("our epoch (same split, checkpoint included)", f"{epoch['ours']['epoch_s']:.1f} s"),
            ("speed-up, reference / ours", f"{epoch['speedup']:.2f}x"),
            ("speed-up counting our one-off cold decode", f"{epoch['speedup_with_cold_decode']:.2f}x"),
        ]
    memory = result.get("memory")
    if memory:
        rows.append(("peak RSS", f"{memory['peak_rss_mib']:.0f} MiB"))
        if "cuda_max_allocated_mib" in memory:
            rows.append(("peak CUDA allocated", f"{memory['cuda_max_allocated_mib']:.0f} MiB"))
    return rows


def format_table(result: dict) -> str:
    """Two aligned columns: what was measured, and the figure."""
    settings = result["settings"]
    title = (f"bench: {settings['backbone']}, {settings['image_size']} px, batch {settings['batch_size']}, "
             f"{torch.get_num_threads()} threads, channels_last={settings['channels_last']}, amp={settings['amp']}, "
             f"compile={settings['compile'] and settings['compile_mode']}")
    env = result.get("environment")
    if env:
        title += (f", numerics {env['numerics']} (ATen {env['aten_capability']}, oneDNN {env['onednn_isa']}, "
                  f"MKL {env['mkl_branch']})")
    rows = _rows(result)
    width = max(len(name) for name, _ in rows)
    return "\n".join([title] + [f"  {name:<{width}}  {value}" for name, value in rows])


def write_json(path: Path, result: dict) -> None:
    atomic_write_text(Path(path), json.dumps(result, indent=1, default=str) + "\n")
