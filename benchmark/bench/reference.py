"""One epoch the way the published script ran it, versus the same epoch through this project's pipeline.

Reference: torchvision ImageFolder with Resize + ToTensor, a DataLoader without workers (every image decoded and
resized again every epoch), the model in channels-first layout, the default Adam, and validation without
torch.no_grad / inference_mode. Ours: `run_epoch` of `train_run` (uint8 images decoded once and kept in memory,
batch-level tensors, channels_last as configured, inference-mode validation) plus its epoch checkpoint.
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
from benchmark.train import _save_checkpoint, run_epoch, synchronize


def _reference_loaders(bench: BenchData) -> tuple[DataLoader, DataLoader]:
    """ImageFolder over the data folder, restricted to the bench split's training and validation files."""
    files = bench.prepared.files
    size = bench.cfg["data"]["image_size"]
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
    batch = bench.cfg["train"]["batch_size"]
    gen = torch.Generator().manual_seed(0)
    return (DataLoader(subsets[0], batch_size=batch, shuffle=True, num_workers=0, generator=gen),
            DataLoader(subsets[1], batch_size=batch, shuffle=False, num_workers=0))


def reference_epoch(bench: BenchData, device: torch.device, show_progress: bool = True) -> dict:
    """Seconds for one reference-style epoch (training + validation)."""
    train_loader, val_loader = _reference_loaders(bench)
    torch.manual_seed(0)
    cfg = bench.cfg
    model = methods.build_backbone(cfg["backbones"][0], len(bench.prepared.class_names), cfg["data"]["image_size"])
    model = model.to(device)
    opt = cfg["train"]["optimizer"]
    optimizer = torch.optim.Adam(model.parameters(), lr=opt["lr"], weight_decay=opt["weight_decay"])
    criterion = torch.nn.CrossEntropyLoss()
    bar = {"file": sys.stderr, "leave": False, "disable": not show_progress, "unit": "batch"}
    tick = time.perf_counter()
    model.train()
    running = 0.0
    for inputs, labels in tqdm(train_loader, desc="reference: train", **bar):
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
        running += loss.item()
    train_s = time.perf_counter() - tick
    model.eval()
    correct = 0
    for inputs, labels in tqdm(val_loader, desc="reference: validate", **bar):
        inputs, labels = inputs.to(device), labels.to(device)
        outputs = model(inputs)
        running += criterion(outputs, labels).item()
        correct += int((outputs.argmax(1) == labels).sum().item())
    total = time.perf_counter() - tick
    return {"train_s": train_s, "val_s": total - train_s, "epoch_s": total}


def our_epoch(bench: BenchData, device: torch.device) -> dict:
    """Seconds for the same epoch through `run_epoch` (what `train_run` does per epoch) plus its checkpoint."""
    trainer = bench_trainer(bench, device)
    with tempfile.TemporaryDirectory(prefix="solderbench-bench-") as tmp:
        synchronize(device)
        tick = time.perf_counter()
        row, _, _ = run_epoch(trainer, 1, bench.prepared.positive)
        _save_checkpoint(Path(tmp) / "last.pt", trainer.state() | {"history": [row], "epoch": 1})
        total = time.perf_counter() - tick
    return {"epoch_s": total, "epoch_without_checkpoint_s": row["epoch_time_s"]}


def run_reference(bench: BenchData, device: torch.device, show_progress: bool = True) -> dict:
    """Reference epoch, then ours on the same split; the ratio, also with our one-off decode counted in."""
    reference = reference_epoch(bench, device, show_progress)
    ours = our_epoch(bench, device)
    decode_s = bench.preparation["decode_cold_s"]
    return {
        "reference": reference,
        "ours": ours,
        "speedup": reference["epoch_s"] / ours["epoch_s"],
        "speedup_with_cold_decode": reference["epoch_s"] / (ours["epoch_s"] + decode_s),
    }
