"""Decode and resize every image once into a uint8 array shared by all runs of an experiment."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmark.atomic import atomic_write, atomic_write_text
from benchmark.data.folders import FileList
from benchmark.data.images import load_rgb, resize_square
from benchmark.errors import UserError, safe_name


@dataclass
class DecodedImages:
    """Images as an N x H x W x 3 uint8 array, aligned with `files` (bad files already dropped)."""

    images: np.ndarray
    files: FileList


def _decode_all(files: FileList, size: int, policy: str, via: int | None) -> tuple[np.ndarray, list[tuple[int, str]]]:
    out = np.empty((len(files.files), size, size, 3), dtype=np.uint8)
    bad: list[tuple[int, str]] = []
    bar = tqdm(files.files, desc="decoding images", unit="img", file=sys.stderr, leave=False, disable=len(files.files) < 500)
    for i, path in enumerate(bar):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[i] = resize_square(load_rgb(path), size, policy, via)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "bad file"
            bad.append((i, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
    return out, bad


def _atomic_save(path: Path, array: np.ndarray) -> None:
    """np.save via a temp file that is renamed into place, or removed when the write fails (a full disk)."""
    atomic_write(path, lambda handle: np.save(handle, array))


def _check_memory(n: int, size: int) -> None:
    """The decoded images must fit in half of this machine's memory (an absurd data.image_size would not)."""
    need = n * size * size * 3
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > total // 2:
        raise UserError(f"data.image_size: {size} px makes {n} decoded images of {need / 2**30:.1f} GiB, more than half "
                        f"of this machine's {total / 2**30:.0f} GiB of memory; lower data.image_size (84-224 is usual)")


def _digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).data).hexdigest()


def _load_cached(cached: Path, meta_path: Path, files: FileList, size: int) -> tuple[np.ndarray, list] | str:
    """The cached images and bad-file list, or why the cache cannot be trusted (damaged, tampered, stale, short)."""
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(cached, allow_pickle=False)
        bad = [(int(i), str(reason)) for i, reason in meta["bad"]]
        expected = (len(files.files) - len(bad), size, size, 3)
        if meta.get("source") != files.fingerprint():
            return "was made from other files"
        if images.dtype != np.uint8 or images.shape != expected or meta.get("n") != expected[0]:
            return f"holds {images.shape} {images.dtype} images, not {expected} uint8"
        if meta.get("sha256") != _digest(images):
            return "does not match its digest (changed after it was written)"
    except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        return f"cannot be read ({type(exc).__name__})"
    return images, bad


def _check_every_class_readable(files: FileList, keep: np.ndarray, bad: list[tuple[int, str]]) -> None:
    """A class whose every file fails to decode would vanish from the task: refused before anything is written."""
    kept = np.bincount(files.labels[keep], minlength=len(files.class_names))
    for label, (name, count) in enumerate(zip(files.class_names, kept)):
        if count == 0:
            i, reason = next((i, reason) for i, reason in bad if files.labels[i] == label)
            raise UserError(f"class {name!r} has no readable image: all its file(s) failed to decode, first: "
                            f"{safe_name(files.files[i])} ({safe_name(reason)}); add images or leave the class out "
                            "(data.classes)")


def decode(
    files: FileList,
    size: int,
    policy: str = "stretch",
    via: int | None = None,
    on_bad_file: str = "skip",
    cache_dir: Path | None = None,
) -> DecodedImages:
    """Decode all files (or load the cache made earlier for the same files and settings).

    Bad files (corrupt, truncated, not an image) are skipped with one warning listing them, or raise
    a UserError when on_bad_file == "error".
    """
    key = hashlib.sha256(f"{files.fingerprint()}|{size}|{policy}|{via}".encode()).hexdigest()[:16]
    cached = cache_dir / f"images-{key}.npy" if cache_dir else None
    meta_path = cache_dir / f"images-{key}.json" if cache_dir else None
    loaded = _load_cached(cached, meta_path, files, size) if cached and (cached.exists() or meta_path.exists()) else None
    from_cache = isinstance(loaded, tuple)
    if isinstance(loaded, str):
        print(f"warning: decoded-image cache {safe_name(cached)} {loaded}; rebuilt from the image files", file=sys.stderr)
    if from_cache:
        images, bad = loaded
    else:
        _check_memory(len(files.files), size)
        images, bad = _decode_all(files, size, policy, via)
    if bad and len(bad) == len(files.files):
        i, reason = bad[0]
        raise UserError(f"no readable image in {safe_name(files.root)}: all {len(bad)} file(s) failed to decode, "
                        f"first: {safe_name(files.files[i])} ({safe_name(reason)}); expected image files (PNG, JPEG, "
                        "TIFF, BMP, ...)")
    if bad and on_bad_file == "error":
        i, reason = bad[0]
        raise UserError(
            f"{len(bad)} unreadable image file(s), first: {safe_name(files.files[i])} ({safe_name(reason)}); "
            "set data.on_bad_file: skip to skip them with a warning"
        )
    keep = np.ones(len(files.files), dtype=bool)
    keep[[i for i, _ in bad]] = False
    _check_every_class_readable(files, keep, bad)
    if not from_cache:
        images = np.ascontiguousarray(images[keep])
        if cached:
            _atomic_save(cached, images)
            atomic_write_text(meta_path, json.dumps({"bad": bad, "n": int(keep.sum()), "source": files.fingerprint(),
                                                     "sha256": _digest(images)}))
    if bad:
        listed = "; ".join(f"{safe_name(files.files[i])} ({safe_name(reason)})" for i, reason in bad[:20])
        more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
        print(f"warning: skipped {len(bad)} unreadable file(s): {listed}{more}", file=sys.stderr)
    kept_files = files.subset(keep)
    kept_files.skipped = [(str(files.files[i]), reason) for i, reason in bad]
    return DecodedImages(images=np.asarray(images), files=kept_files)
