"""Everything a sweep needs from the data, prepared once: decoded images, labels and the shared folds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.cache import decode
from benchmark.data.digests import cache_root
from benchmark.data.folders import FileList, scan
from benchmark.errors import UserError, brief
from benchmark.experiment import Experiment
from benchmark.protocol import Fold, folds_fingerprint, make_folds


@dataclass
class Prepared:
    files: FileList
    images: np.ndarray
    folds: list[Fold]
    positive: int
    scan_fingerprint: str
    dataset_fingerprint: str
    folds_fingerprint: str

    @property
    def class_names(self) -> list[str]:
        return self.files.class_names


@contextmanager
def about(where: str) -> Iterator[None]:
    """A UserError raised inside gets `where` (the experiment file) in front: for steps whose errors don't name it."""
    try:
        yield
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def data_folder(cfg: Experiment) -> Path:
    """The dataset folder; generates the synthetic set on first use."""
    data = cfg.data
    if data.root != "synthetic":
        return Path(data.root)
    from benchmark.data.synthetic import ensure_synthetic

    syn = data.synthetic
    with about(cfg.source):
        return ensure_synthetic(cache_root(), n=syn.n, seed=syn.seed, size=syn.size, normal_fraction=syn.normal_fraction)


def positive_index(cfg: Experiment, class_names: list[str]) -> int:
    positive = cfg.data.positive
    if positive is None:
        return 1 if len(class_names) >= 2 else 0
    if positive not in class_names:
        raise UserError(f"{cfg.source}: data.positive: {brief(positive)} is not a class; classes: {', '.join(class_names)}")
    return class_names.index(positive)


def scan_config(cfg: Experiment) -> FileList:
    data = cfg.data
    return scan(data_folder(cfg), data.layout, data.classes, where=cfg.source)


def prepare(cfg: Experiment, decode_images: bool = True) -> Prepared:
    """Scan, decode (cached), and split. With decode_images=False only files and folds are computed.

    Run ids use `scan_fingerprint` (the files found on disk), so they are the same with or without decoding,
    even when decoding later drops unreadable files.
    """
    data = cfg.data
    files = scan_config(cfg)
    scan_fingerprint = files.fingerprint()
    images = np.empty((0,), dtype=np.uint8)
    if decode_images:
        with about(cfg.source):
            decoded = decode(
                files,
                data.image_size,
                data.resize.policy,
                data.resize.via,
                data.on_bad_file,
                cache_dir=cache_root() / "decoded",
            )
        files, images = decoded.files, decoded.images
    with about(cfg.source):
        folds = make_folds(files, cfg.protocol)
    return Prepared(
        files=files,
        images=images,
        folds=folds,
        positive=positive_index(cfg, files.class_names),
        scan_fingerprint=scan_fingerprint,
        dataset_fingerprint=files.fingerprint(),
        folds_fingerprint=folds_fingerprint(files, folds),
    )
