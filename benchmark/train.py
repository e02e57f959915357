"""Train one run on one fold: epochs with inner validation, model selection, epoch checkpoints, test."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import methods
from benchmark.dataset import Prepared
from benchmark.metrics import classification_metrics
from benchmark.protocol import Fold
from benchmark.store import atomic_write_csv, crash_point

MAXIMIZE = {"val_f1": True, "val_accuracy": True, "val_macro_f1": True, "val_loss": False}


class RunFailed(Exception):
    """A run that cannot finish (NaN loss, ...): recorded as failed, the sweep goes on."""


@dataclass
class RunSpec:
    """One cell of the sweep: a method with fixed parameters, a backbone, a fold and a seed."""

    run_id: str
    experiment: str
    method: str
    method_params: dict
    backbone: str
    weights: str | None
    repeat: int
    fold: int
    seed: int
    resolved: dict = field(default_factory=dict, repr=False)


@dataclass
class RunResult:
    val: dict
    test: dict
    selected_epoch: int
    epochs_run: int
    history: pd.DataFrame
    predictions: pd.DataFrame
    n_train: int
    n_val: int
    n_test: int


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"run.device {name!r} asked for, but CUDA is not available here; use auto or cpu")
    return device


def run_seed(spec: RunSpec) -> int:
    """Same for every method on the same (seed, repeat, fold): runs are paired down to the initial weights."""
    return spec.seed * 1_000_003 + spec.repeat * 1009 + spec.fold


def augment_batch(x: torch.Tensor, ops: list[str], gen: torch.Generator) -> torch.Tensor:
    """Random flips / 90° rotations per sample, on a whole batch of NCHW tensors at once."""
    n = x.shape[0]
    if "hflip" in ops:
        mask = (torch.rand(n, generator=gen) < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(mask, x.flip(3), x)
    if "vflip" in ops:
        mask = (torch.rand(n, generator=gen) < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(mask, x.flip(2), x)
    if "rot90" in ops:
        turns = torch.randint(0, 4, (n,), generator=gen).to(x.device)
        out = x.clone()
        for k in (1, 2, 3):
            sel = turns == k
            if sel.any():
                out[sel] = torch.rot90(x[sel], k, dims=(2, 3))
        x = out
    return x


class FoldData:
    """The fold's uint8 images on the device and the normalization from its training part."""

    def __init__(self, prepared: Prepared, fold: Fold, device: torch.device, channels_last: bool):
        images = torch.from_numpy(np.ascontiguousarray(prepared.images)).permute(0, 3, 1, 2)
        if not channels_last:
            images = images.contiguous()
        self.device = device
        self.parts = {}
        for part in ("train", "val", "test"):
            idx = torch.from_numpy(getattr(fold, part))
            self.parts[part] = (images[idx].to(device), torch.from_numpy(prepared.files.labels[getattr(fold, part)]).to(device))
        train_float = self.parts["train"][0].double() / 255.0
        self.mean = train_float.mean(dim=(0, 2, 3)).float().view(1, 3, 1, 1)
        self.std = train_float.std(dim=(0, 2, 3)).clamp_min(1e-3).float().view(1, 3, 1, 1)
        self.indices = {part: getattr(fold, part) for part in ("train", "val", "test")}

    def to_input(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw.float() / 255.0 - self.mean) / self.std


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def evaluate(model, objective, data: FoldData, part: str, batch_size: int, amp: bool) -> tuple[np.ndarray, float]:
    """Probabilities and mean objective value over one part, without autograd."""
    x_all, y_all = data.parts[part]
    model.eval()
    probs, loss_sum = [], 0.0
    with torch.inference_mode():
        for start in range(0, len(y_all), batch_size):
            x = data.to_input(x_all[start : start + batch_size])
            y = y_all[start : start + batch_size]
            with _autocast(data.device, amp):
                logits = model(x)
            logits = logits.float()
            loss_sum += float(objective(logits, y)) * len(y)
            probs.append(torch.softmax(logits, dim=1).double().cpu())
    return torch.cat(probs).numpy(), loss_sum / max(len(y_all), 1)


def _make_optimizer(params, cfg: dict):
    opt = cfg["train"]["optimizer"]
    if opt["name"] == "adam":
        return torch.optim.Adam(params, lr=opt["lr"], weight_decay=opt["weight_decay"])
    if opt["name"] == "adamw":
        return torch.optim.AdamW(params, lr=opt["lr"], weight_decay=opt["weight_decay"])
    return torch.optim.SGD(params, lr=opt["lr"], weight_decay=opt["weight_decay"], momentum=opt["momentum"])


def _make_scheduler(optimizer, cfg: dict):
    sched = cfg["train"]["scheduler"]
    if sched is None:
        return None
    if sched["name"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg["train"]["epochs"])
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=sched["step_size"], gamma=sched["gamma"])


def build_model(spec: RunSpec, num_classes: int, image_size: int):
    """The backbone, wrapped by the method when the method changes the model (e.g. bilinear pooling)."""
    objective = methods.build(spec.method, **spec.method_params)
    model = methods.build_backbone(spec.backbone, num_classes, image_size, weights=spec.weights)
    return objective.wrap_model(model, num_classes), objective


def _is_better(score: float, best: float | None, select_by: str) -> bool:
    if select_by == "last" or best is None:
        return True
    return score > best if MAXIMIZE[select_by] else score < best


def _save_checkpoint(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    crash_point("checkpoint")
    tmp.replace(path)


def train_run(
    spec: RunSpec,
    cfg: dict,
    prepared: Prepared,
    run_dir: Path,
    device: torch.device,
    heartbeat: Callable[[], None] = lambda: None,
    show_progress: bool = True,
) -> RunResult:
    """Train on the fold's training part, select on its validation part, evaluate on its test part."""
    train_cfg = cfg["train"]
    select_by = cfg["protocol"]["select_by"]
    fold = next(f for f in prepared.folds if f.repeat == spec.repeat and f.fold == spec.fold)
    num_classes = len(prepared.class_names)
    torch.manual_seed(run_seed(spec))
    np.random.seed(run_seed(spec) % 2**32)
    model, objective = build_model(spec, num_classes, cfg["data"]["image_size"])
    model = model.to(device)
    if train_cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if train_cfg["compile"] else model
    optimizer = _make_optimizer(model.parameters(), cfg)
    scheduler = _make_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=train_cfg["amp"] and device.type == "cuda")
    data = FoldData(prepared, fold, device, train_cfg["channels_last"])
    gen = torch.Generator().manual_seed(run_seed(spec))
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    history: list[dict] = []
    start_epoch, best_score, best_epoch, stale = 1, None, 0, 0
    if last_path.exists():
        state = torch.load(last_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history = state["history"]
        start_epoch, best_score, best_epoch, stale = state["epoch"] + 1, state["best_score"], state["best_epoch"], state["stale"]
    x_train, y_train = data.parts["train"]
    n_train = len(y_train)
    batch = train_cfg["batch_size"]
    epochs = range(start_epoch, train_cfg["epochs"] + 1)
    bar = tqdm(epochs, desc=f"  {spec.method}/{spec.backbone} f{spec.fold}", unit="ep", leave=False,
               file=sys.stderr, disable=not show_progress, initial=start_epoch - 1, total=train_cfg["epochs"])
    for epoch in bar:
        if train_cfg["early_stopping"] and stale >= train_cfg["early_stopping"]["patience"]:
            break
        tick = time.perf_counter()
        model.train()
        order = torch.randperm(n_train, generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for start in range(0, n_train, batch):
            idx = order[start : start + batch].to(device)
            if len(idx) < 2 and n_train > 1:
                continue
            x = data.to_input(augment_batch(x_train[idx], cfg["data"]["augment"], gen))
            y = y_train[idx]
            with _autocast(device, train_cfg["amp"]):
                logits = forward(x)
            loss = objective(logits.float(), y)
            if not torch.isfinite(loss):
                raise RunFailed(f"loss is {float(loss.detach())} at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            crash_point("batch")
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        val_probs, val_loss = evaluate(forward, objective, data, "val", train_cfg["eval_batch_size"], train_cfg["amp"])
        val = classification_metrics(val_probs, data.parts["val"][1].cpu().numpy(), prepared.positive)
        val["loss"] = val_loss
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val["accuracy"],
            "val_f1": val["f1"],
            "val_macro_f1": val["macro_f1"],
            "lr": lr,
            "epoch_time_s": time.perf_counter() - tick,
        }
        history.append(row)
        score = row[select_by] if select_by != "last" else epoch
        if _is_better(score, best_score, select_by):
            best_score, best_epoch, stale = score, epoch, 0
            _save_checkpoint(best_path, {"model": model.state_dict(), "epoch": epoch})
        else:
            stale += 1
        _save_checkpoint(
            last_path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "epoch": epoch,
                "best_score": best_score,
                "best_epoch": best_epoch,
                "stale": stale,
            },
        )
        heartbeat()
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", **{select_by: f"{row.get(select_by, epoch):.3f}"})
    bar.close()
    model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True)["model"])
    val_probs, val_loss = evaluate(model, objective, data, "val", train_cfg["eval_batch_size"], train_cfg["amp"])
    val = classification_metrics(val_probs, data.parts["val"][1].cpu().numpy(), prepared.positive)
    val["loss"] = val_loss
    test_probs, _ = evaluate(model, objective, data, "test", train_cfg["eval_batch_size"], train_cfg["amp"])
    test_labels = data.parts["test"][1].cpu().numpy()
    test = classification_metrics(test_probs, test_labels, prepared.positive)
    if not all(math.isfinite(v) for v in test_probs.ravel()):
        raise RunFailed("non-finite test probabilities")
    names = prepared.files.relative()
    predictions = pd.DataFrame(
        {"file": [names[i] for i in fold.test], "label": test_labels, "pred": test_probs.argmax(1)}
        | {f"prob_{c}": test_probs[:, k] for k, c in enumerate(prepared.class_names)}
    )
    frame = pd.DataFrame(history)
    atomic_write_csv(run_dir / "predictions.csv", predictions)
    return RunResult(val, test, best_epoch, len(history), frame, predictions, len(fold.train), len(fold.val), len(fold.test))
