"""What `bench` measures on: a validated config, the data decoded once (timed, cold cache) and one split."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import methods
from benchmark.config import validate_experiment
from benchmark.data.cache import decode
from benchmark.dataset import Prepared, data_folder, positive_index, scan_config
from benchmark.errors import UserError
from benchmark.experiment import AUGMENTATIONS, Experiment, Train
from benchmark.protocol import Fold, sized_split

REFERENCE_SPLIT = (2370, 508)  # the published script's epoch: 2,370 training and 508 validation images
EVAL_BATCH_SIZE = Train.model_fields["eval_batch_size"].default


@dataclass(frozen=True)
class BenchOptions:
    """The command line of `bench`, as plain values."""

    backbone: str = "resnet18"
    image_size: int = 84
    batch_size: int = 64
    data: str = "synthetic"
    classes: str = "binary"
    augment: tuple[str, ...] = AUGMENTATIONS
    device: str = "auto"
    channels_last: bool = True
    amp: bool = False
    compile: bool = False
    compile_mode: str = "default"
    eval_batch_size: int = EVAL_BATCH_SIZE
    n_train: int = REFERENCE_SPLIT[0]
    n_val: int = REFERENCE_SPLIT[1]
    seed: int = 0


@dataclass
class BenchData:
    cfg: Experiment
    prepared: Prepared
    fold: Fold
    preparation: dict


def _class_mapping(folder: Path, classes: str) -> dict[str, list[str]] | None:
    if classes == "folders":
        return None
    subfolders = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if "normal" not in subfolders or len(subfolders) < 2:
        raise UserError(f"--classes binary needs a 'normal' folder and at least one other in {folder} "
                        f"(found: {', '.join(subfolders) or 'none'}); use --classes folders")
    return {"normal": ["normal"], "defective": [s for s in subfolders if s != "normal"]}


def bench_config(opts: BenchOptions) -> Experiment:
    """The experiment config the bench trains with: the project defaults plus the command-line choices."""
    if opts.data != "synthetic" and not Path(opts.data).is_dir():
        raise UserError(f"--data {opts.data}: not a folder; give an image folder (one sub-folder per class) or 'synthetic'")
    raw = {
        "name": "bench",
        "data": {"root": opts.data, "image_size": opts.image_size, "augment": list(opts.augment)},
        "train": {"batch_size": opts.batch_size, "eval_batch_size": opts.eval_batch_size,
                  "channels_last": opts.channels_last, "amp": opts.amp, "compile": opts.compile,
                  "compile_mode": opts.compile_mode},
        "methods": ["ce"],
        "backbones": [opts.backbone],
        "run": {"device": opts.device},
    }
    cfg = validate_experiment(raw, "bench").located("bench", Path.cwd())
    methods.backbone_info(opts.backbone)
    if opts.data != "synthetic":
        cfg = cfg.replace(data=cfg.data.model_copy(update={"root": str(Path(opts.data).resolve())}))
    return cfg.replace(data=cfg.data.model_copy(update={"classes": _class_mapping(data_folder(cfg), opts.classes)}))


def bench_split(labels: np.ndarray, n_train: int, n_val: int, seed: int) -> Fold:
    """A stratified train / validation split of `n_train` / `n_val` images (at most 70% / 15% of the data)."""
    n = len(labels)
    n_train, n_val = min(n_train, round(0.70 * n)), min(n_val, round(0.15 * n))
    try:
        return sized_split(labels, n_train, n_val, seed)
    except ValueError as exc:
        raise UserError(f"--data: cannot split {n} images into {n_train} training and {n_val} validation images "
                        f"with every class on each side ({exc}); use more images or --classes binary") from None


def prepare_bench_data(opts: BenchOptions) -> BenchData:
    """Scan the data, decode + resize it once into an empty cache folder (timed), load it back (timed), split."""
    cfg = bench_config(opts)
    data = cfg.data
    files = scan_config(cfg)
    with tempfile.TemporaryDirectory(prefix="solderbench-bench-") as tmp:
        tick = time.perf_counter()
        decoded = decode(files, data.image_size, data.resize.policy, data.resize.via,
                         data.on_bad_file, cache_dir=Path(tmp))
        cold = time.perf_counter() - tick
        cache_bytes = sum(p.stat().st_size for p in Path(tmp).glob("images-*.npy"))
        tick = time.perf_counter()
        decode(files, data.image_size, data.resize.policy, data.resize.via, data.on_bad_file,
               cache_dir=Path(tmp))
        warm = time.perf_counter() - tick
    images, files = decoded.images, decoded.files
    fold = bench_split(files.labels, opts.n_train, opts.n_val, opts.seed)
    prepared = Prepared(files=files, images=images, folds=[fold], positive=positive_index(cfg, files.class_names),
                        scan_fingerprint="", dataset_fingerprint="", folds_fingerprint="")
    preparation = {
        "n_images": int(len(images)),
        "decode_cold_s": cold,
        "decode_images_per_s": len(images) / cold,
        "load_cached_s": warm,
        "cache_bytes": int(cache_bytes),
        "raw_uint8_bytes": int(images.nbytes),
        "cache_to_raw": cache_bytes / max(images.nbytes, 1),
        "classes": files.class_names,
        "n_train": int(len(fold.train)),
        "n_val": int(len(fold.val)),
    }
    return BenchData(cfg, prepared, fold, preparation)
