"""One epoch the way the published script ran it, versus the same epoch through this project's pipeline.

Reference: torchvision ImageFolder with Resize + ToTensor, a DataLoader without workers (every image decoded and
resized again every epoch), the model in channels-first layout, the default Adam, and validation without
torch.no_grad / inference_mode. Ours: `run_epoch` of `train_run` (uint8 images decoded once and kept in memory,
batch-level tensors, channels_last as configured, inference-mode validation) plus its epoch checkpoint.
The two runs' training steps alternate, one reference step after each of ours, each timed on its own.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms
from tqdm import tqdm

import methods
from benchmark.bench.setup import BenchData
from benchmark.bench.throughput import bench_trainer
from benchmark.errors import UserError
from benchmark.rundir import RunDir
from benchmark.train import run_epoch, synchronize


def _reference_loaders(bench: BenchData) -> tuple[DataLoader, DataLoader]:
    """ImageFolder over the data folder, restricted to the bench split's training and validation files."""
    files = bench.prepared.files
    size = bench.cfg.data.image_size
    label_of_folder = dict(zip(files.source_folders, (int(v) for v in files.labels), strict=True))
    folder = datasets.ImageFolder(files.root, transform=transforms.Compose([transforms.Resize((size, size)),
                                                                            transforms.ToTensor()]))
    folder.target_transform = lambda k: label_of_folder[folder.classes[k]]
    position = {Path(path).resolve(): i for i, (path, _) in enumerate(folder.samples)}
    subsets = []
    for part in (bench.fold.train, bench.fold.val):
        try:
            subsets.append(Subset(folder, [position[files.files[i].resolve()] for i in part]))
        except KeyError as exc:
            raise UserError(f"--reference-epoch: torchvision ImageFolder does not read {exc.args[0]}") from None
    batch = bench.cfg.train.batch_size
    gen = torch.Generator().manual_seed(0)
    return (DataLoader(subsets[0], batch_size=batch, shuffle=True, num_workers=0, generator=gen),
            DataLoader(subsets[1], batch_size=batch, shuffle=False, num_workers=0))


class ReferenceScript:
    """The published script's epoch, one training step at a time, so the bench can interleave it with ours."""

    def __init__(self, bench: BenchData, device: torch.device, show_progress: bool = True):
        self.train_loader, self.val_loader = _reference_loaders(bench)
        self.device = device
        self.show_progress = show_progress
        torch.manual_seed(0)
        cfg = bench.cfg
        model = methods.build_backbone(cfg.backbones[0], len(bench.prepared.class_names), cfg.data.image_size)
        self.model = model.to(device)
        opt = cfg.train.optimizer
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
        self.criterion = torch.nn.CrossEntropyLoss()
        self.batches = iter(self.train_loader)
        self.train_s = 0.0
        self.running = 0.0

    def step(self) -> bool:
        """One training step (loading its batch included), timed; False once the epoch's batches are used up."""
        tick = time.perf_counter()
        try:
            inputs, labels = next(self.batches)
        except StopIteration:
            return False
        self.model.train()
        inputs, labels = inputs.to(self.device), labels.to(self.device)
        self.optimizer.zero_grad()
        loss = self.criterion(self.model(inputs), labels)
        loss.backward()
        self.optimizer.step()
        self.running += loss.item()
        self.train_s += time.perf_counter() - tick
        return True

    def finish_training(self) -> None:
        while self.step():
            pass

    def validate(self) -> float:
        """Seconds for the validation pass, model in eval mode but autograd on (as the script did)."""
        tick = time.perf_counter()
        self.model.eval()
        correct = 0
        for inputs, labels in tqdm(self.val_loader, desc="reference: validate", file=sys.stderr, leave=False,
                                   disable=not self.show_progress, unit="batch"):
            inputs, labels = inputs.to(self.device), labels.to(self.device)
            outputs = self.model(inputs)
            self.running += self.criterion(outputs, labels).item()
            correct += int((outputs.argmax(1) == labels).sum().item())
        return time.perf_counter() - tick


def run_reference(bench: BenchData, device: torch.device, show_progress: bool = True) -> dict:
    """The reference epoch and ours on the same split, their training steps interleaved one by one (a burst of
    load on the shared machine then slows both alike); the ratio, also with our one-off decode counted in."""
    reference = ReferenceScript(bench, device, show_progress)
    trainer = bench_trainer(bench, device)
    bar = tqdm(total=len(reference.train_loader), desc="reference + ours: train", file=sys.stderr, leave=False,
               disable=not show_progress, unit="step")

    def interleaved() -> None:
        reference.step()
        bar.update()

    synchronize(device)
    row, _, _ = run_epoch(trainer, 1, bench.prepared.positive, after_step=interleaved)
    ours_train_val = row["epoch_time_s"] - reference.train_s
    reference.finish_training()
    bar.close()
    with tempfile.TemporaryDirectory(prefix="solderbench-bench-") as tmp:
        tick = time.perf_counter()
        RunDir(tmp).save_last(trainer.state() | {"history": [row], "epoch": 1})
        checkpoint_s = time.perf_counter() - tick
    reference_val = reference.validate()
    ours = ours_train_val + checkpoint_s
    ref_total = reference.train_s + reference_val
    return {
        "reference": {"train_s": reference.train_s, "val_s": reference_val, "epoch_s": ref_total},
        "ours": {"epoch_s": ours, "train_and_val_s": ours_train_val, "checkpoint_s": checkpoint_s},
        "speedup": ref_total / ours,
        "speedup_with_cold_decode": ref_total / (ours + bench.preparation["decode_cold_s"]),
    }
