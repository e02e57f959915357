"""An embedded synthetic solder-joint dataset: rendered with NumPy, no downloads, the same bytes on every machine.

The images are drawn by `benchmark.data.scene`; this module decides how many of each class, seeds every image,
writes the files in worker processes and installs the folder atomically (also as a cache). Every class is written at
the same size and format, so neither colour nor file format gives the class away. The files depend only on the
parameters and NumPy's random streams: not on the CPU's SIMD features, the BLAS, or Pillow's codecs (the PNG files
are written by `benchmark.data.pixels`).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmark.data.pixels import write_png
from benchmark.data.scene import CLASSES, render
from benchmark.errors import UserError
from benchmark.lifetime import die_with_parent

REAL_DEFECT_COUNTS: dict[str, int] = {
    "excessive_solder": 92,
    "insufficient_solder": 148,
    "shifted_component": 114,
    "short": 300,
}
GENERATOR_VERSION = 3  # part of every image seed and of SYNTHETIC.json: bump it when the images change
MARKER = "SYNTHETIC.json"
CHUNK = 64  # images per task handed to a worker process
IMAGES_PER_WORKER = 256  # a worker process is started for at least this many images


def class_counts(n: int, normal_fraction: float = 0.8, defect_weights: dict[str, float] | None = None) -> dict[str, int]:
    """Images per class: round(n * normal_fraction) normal, the rest split by the weights (largest remainder)."""
    _check_counts(n, normal_fraction)
    weights = dict(REAL_DEFECT_COUNTS if defect_weights is None else defect_weights)
    unknown = sorted(set(weights) - set(CLASSES[1:]))
    if unknown:
        raise UserError(f"defect_weights: unknown class(es) {', '.join(unknown)}; allowed: {', '.join(CLASSES[1:])}")
    try:
        w = np.array([float(weights.get(c, 0.0)) for c in CLASSES[1:]])
    except (TypeError, ValueError):
        raise UserError(f"defect_weights: weights must be numbers, got {weights}") from None
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise UserError(f"defect_weights: weights must be >= 0 with a positive sum, got {weights}")
    n_normal = min(max(int(round(n * normal_fraction)), 1), n - int(np.count_nonzero(w)))
    share = w / w.sum() * (n - n_normal)
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts), kind="stable")[: n - n_normal - counts.sum()]:
        counts[i] += 1
    return {"normal": n_normal, **{c: int(m) for c, m in zip(CLASSES[1:], counts, strict=True)}}


def _check_counts(n: int, normal_fraction: float) -> None:
    if int(n) != n or n < len(CLASSES):
        raise UserError(f"synthetic n={n} is not allowed; need an integer >= {len(CLASSES)} (one per class)")
    if not 0.0 < float(normal_fraction) < 1.0:
        raise UserError(f"synthetic normal_fraction={normal_fraction} is not allowed; need a value in (0, 1)")


def _image_rng(seed: int, cls: str, index: int) -> np.random.Generator:
    """Each image has its own stream, so an image does not depend on which others are generated."""
    return np.random.default_rng([int(seed), CLASSES.index(cls), int(index), GENERATOR_VERSION])


def _severity(rng: np.random.Generator, cls: str) -> float:
    """Defect severity ~ Beta(1.6, 1): mostly clear defects, about 8% below 0.2 where they are barely visible."""
    return 0.0 if cls == "normal" else float(rng.random() ** (1.0 / 1.6))


def _params(n: int, seed: int, size: int, normal_fraction: float, defect_weights: dict[str, float] | None) -> dict:
    if int(size) != size or size < 16:
        raise UserError(f"synthetic size={size} is not allowed; need an integer >= 16 pixels")
    if int(seed) != seed or seed < 0:
        raise UserError(f"synthetic seed={seed} is not allowed; need an integer >= 0")
    counts = class_counts(n, normal_fraction, defect_weights)
    return {
        "generator": "benchmark.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "n": int(n),
        "seed": int(seed),
        "size": int(size),
        "normal_fraction": float(normal_fraction),
        "defect_weights": {c: float(w) for c, w in (defect_weights or REAL_DEFECT_COUNTS).items()},
        "counts": counts,
        "format": "PNG, RGB, 8 bit",
    }


def _save_png(array: np.ndarray, path: Path) -> None:
    """Write one image (a PNG of stored, uncompressed data: the same bytes with any zlib)."""
    write_png(array, path)


def _render_chunk(folder: Path, seed: int, size: int, jobs: list[tuple[str, int]]) -> int:
    """Render and save a list of (class, index) images; returns how many. Runs in a worker process or here."""
    for cls, i in jobs:
        rng = _image_rng(seed, cls, i)
        path = folder / cls / f"{cls}_{i}.png"
        try:
            _save_png(render(rng, cls, size, _severity(rng, cls)), path)
        except OSError as exc:  # a full disk fails a write(), which names no file
            exc.filename = exc.filename or str(path)
            raise
    return len(jobs)


def worker_count(n: int, workers: int | None = None) -> int:
    """Processes to render n images with: `workers` (default: the usable CPU cores), but one per
    IMAGES_PER_WORKER images at most, so that small sets do not pay for starting processes."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if int(workers) != workers or workers < 1:
        raise UserError(f"synthetic workers={workers} is not allowed; need an integer >= 1")
    return max(1, min(int(workers), n // IMAGES_PER_WORKER))


def _write_images(folder: Path, params: dict, progress: bool, n_workers: int) -> None:
    """Write every image under folder/<class>/, then the marker file.

    The images are rendered in chunks, spread over `n_workers` processes (each image has its own random stream,
    so the bytes do not depend on the number of workers or the order the chunks finish in). The workers die with
    this process, kill -9 included.
    """
    jobs = [(cls, i) for cls in CLASSES for i in range(params["counts"][cls])]
    for cls in CLASSES:
        if params["counts"][cls]:
            (folder / cls).mkdir(parents=True, exist_ok=True)
    chunks = [jobs[start : start + CHUNK] for start in range(0, len(jobs), CHUNK)]
    bar = tqdm(total=len(jobs), desc="synthetic images", unit="img", file=sys.stderr, disable=not progress)
    with bar:
        if n_workers == 1:
            for chunk in chunks:
                bar.update(_render_chunk(folder, params["seed"], params["size"], chunk))
        else:
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=context, initializer=die_with_parent,
                                     initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(_render_chunk, folder, params["seed"], params["size"], c) for c in chunks]
                try:
                    for future in as_completed(futures):
                        bar.update(future.result())
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    (folder / MARKER).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")


def _is_synthetic(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _replaceable(folder: Path) -> bool:
    """Whether a new synthetic dataset may take `folder`'s place: absent, an empty folder, or an older synthetic set."""
    return not folder.exists() or (folder.is_dir() and (_is_synthetic(folder) or not any(folder.iterdir())))


def _other_data(folder: Path, advice: str) -> UserError:
    return UserError(f"{folder} exists and is not a synthetic dataset (no {MARKER}); {advice}")


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A new folder beside `target` to write a dataset into, removed afterwards unless it was moved into place.

    It is flock'ed while in use (its worker processes inherit the lock), so staging folders of killed generators,
    which nobody holds, are told apart and removed first. It is made under another name and renamed once locked, so
    no other generator ever sees it unlocked.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    made = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    fd = os.open(made, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _lock_folder(fd)
        tmp = made.with_name(f".{target.name}.tmp-{made.name.rsplit('-', 1)[1]}")
        os.rename(made, tmp)
        os.chmod(tmp, 0o755)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(made, ignore_errors=True)
        os.close(fd)


def _lock_folder(fd: int, blocking: bool = True) -> bool:
    """flock an open folder: False when another process holds it or the file system has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def _remove_abandoned(target: Path) -> None:
    """Remove the staging folders beside `target` that no live process holds (a killed generator's)."""
    for folder in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            if _lock_folder(fd, blocking=False):
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)


def _install(tmp: Path, target: Path) -> None:
    """Move a finished dataset into place; an older synthetic dataset there is replaced, other data never (and the
    older one is put back when the new one cannot take its place)."""
    try:
        os.replace(tmp, target)
        return
    except OSError:
        if not (target.is_dir() and _replaceable(target)):
            raise _other_data(target, "move it away") from None
    with _staging(target) as trash:
        os.replace(target, trash / target.name)
        try:
            os.replace(tmp, target)
        except OSError:
            os.replace(trash / target.name, target)
            raise


def generate(
    out_dir: Path,
    n: int = 1000,
    seed: int = 0,
    size: int = 64,
    normal_fraction: float = 0.8,
    defect_weights: dict[str, float] | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> Path:
    """Write n images to out_dir/<class>/<class>_<i>.png plus SYNTHETIC.json, atomically; returns out_dir.
    `workers`: processes to render with (default: the usable CPU cores; see `worker_count`)."""
    out_dir = Path(out_dir)
    params = _params(n, seed, size, normal_fraction, defect_weights)
    n_workers = worker_count(params["n"], workers)
    if not _replaceable(out_dir):
        raise _other_data(out_dir, "choose a new folder")
    with _staging(out_dir) as tmp:
        _write_images(tmp, params, progress, n_workers)
        _install(tmp, out_dir)
    return out_dir


def cache_name(n: int, seed: int, size: int, normal_fraction: float = 0.8) -> str:
    """Folder name of a cached synthetic dataset."""
    return f"synthetic-n{int(n)}-s{int(seed)}-px{int(size)}-f{float(normal_fraction):g}"


def ensure_synthetic(cache_root: Path, n: int, seed: int, size: int, normal_fraction: float = 0.8) -> Path:
    """The cached dataset for these parameters, generated once; safe when two processes race for it."""
    params = _params(n, seed, size, normal_fraction, None)
    target = Path(cache_root) / cache_name(n, seed, size, normal_fraction)
    if _read_marker(target) == params:
        return target
    if not _replaceable(target):
        raise _other_data(target, "move it away")
    with _staging(target) as tmp:
        _write_images(tmp, params, progress=n >= 2000, n_workers=worker_count(params["n"]))
        try:
            os.replace(tmp, target)
        except OSError:
            if _read_marker(target) != params:
                _install(tmp, target)
    return target
