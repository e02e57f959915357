"""A fold's images on the device (uint8, normalized per batch from the training part's statistics), the epoch's
batches and their augmentations, and the up-front check that every epoch has a batch to train on."""

from __future__ import annotations

import math

import numpy as np
import torch

from benchmark.dataset import Prepared
from benchmark.errors import UserError
from benchmark.experiment import MIN_BATCH_SIZE, Experiment
from benchmark.protocol import Fold
from benchmark.train.device import to_device


def batch_starts(n: int, size: int) -> list[int]:
    """Where an epoch's batches start: every `size` images, a last batch of one dropped (batch norm cannot train on it)."""
    return [start for start in range(0, n, size) if min(size, n - start) >= MIN_BATCH_SIZE]


def check_batches(cfg: Experiment, folds: list[Fold]) -> None:
    """Refuse up front a sweep in which an epoch would have no training batch of 2 images or more: batch norm cannot
    train on one image, so a last batch of one is dropped, and an epoch of such batches would train nothing
    (train.batch_size ≥ MIN_BATCH_SIZE is the schema's bound; a fold's training part is checked here)."""
    where = cfg.source
    for fold in folds:
        if len(fold.train) < MIN_BATCH_SIZE:
            raise UserError(f"{where}: repeat {fold.repeat} fold {fold.fold} has {len(fold.train)} training image(s); "
                            "an epoch needs a batch of ≥ 2: add images, or lower protocol.val_fraction or protocol.folds")


def draw_augmentations(n: int, ops: list[str], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One epoch's random augmentation choices, one entry per sample position: flip flags and 90° turns."""
    draws = {}
    for op in ops:
        if op == "rot90":
            draws[op] = torch.randint(0, 4, (n,), generator=gen)
        else:
            draws[op] = torch.rand(n, generator=gen) < 0.5
    return draws


def augment_batch(x: torch.Tensor, draws: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply per-sample flips / 90° rotations (`draws` from `draw_augmentations`) to a whole NCHW batch at once.

    Element-wise selects only (no data-dependent branches), so a CUDA batch never waits for the host.
    Rotations need square images (the decoded cache always is).
    """
    if "hflip" in draws:
        x = torch.where(draws["hflip"][:, None, None, None], x.flip(3), x)
    if "vflip" in draws:
        x = torch.where(draws["vflip"][:, None, None, None], x.flip(2), x)
    if "rot90" in draws:
        turns = draws["rot90"][:, None, None, None]
        t = x.transpose(2, 3)
        rest = torch.where(turns == 2, x.flip((2, 3)), torch.where(turns == 3, t.flip(3), x))
        x = torch.where(turns == 1, t.flip(2), rest, out=torch.empty_like(x))
    return x


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (n-1) standard deviation of N x H x W x 3 uint8 images in [0, 1], exact, in float64.

    Computed from each channel's histogram of the 256 values, so no float copy of the images is made.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    mean, std = np.zeros(3), np.ones(3)
    for c in range(images.shape[-1]):
        counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        n = counts.sum()
        mean[c] = (counts * values).sum() / n
        std[c] = math.sqrt((counts * (values - mean[c]) ** 2).sum() / max(n - 1, 1)) if n > 1 else float("nan")
    return mean, std


class FoldData:
    """The fold's uint8 images on the device, the normalization from its training part, the class names and the
    training part's images per class (what a method's `prepare` is told)."""

    def __init__(self, prepared: Prepared, fold: Fold, device: torch.device, channels_last: bool):
        self.device = device
        self.parts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for part in ("train", "val", "test"):
            idx = getattr(fold, part)
            images = torch.from_numpy(np.ascontiguousarray(prepared.images[idx])).permute(0, 3, 1, 2)
            if not channels_last:
                images = images.contiguous()
            labels = torch.from_numpy(np.asarray(prepared.files.labels[idx], dtype=np.int64))
            self.parts[part] = (to_device(images, device), to_device(labels, device))
        mean, std = channel_stats(prepared.images[fold.train])
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1).to(device)
        self.std = torch.tensor(std, dtype=torch.float32).clamp_min(1e-3).view(1, 3, 1, 1).to(device)
        self.indices = {part: getattr(fold, part) for part in ("train", "val", "test")}
        self.class_names = list(prepared.class_names)
        train_labels = np.asarray(prepared.files.labels[fold.train], dtype=np.int64)
        self.class_counts = np.bincount(train_labels, minlength=len(self.class_names)).tolist()

    def to_input(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> float model input (x / 255 - mean) / std, in the batch's memory format."""
        return raw.to(torch.float32, copy=True).div_(255.0).sub_(self.mean).div_(self.std)
