"""Train one run on one fold: epochs with inner validation, model selection, epoch checkpoints, test.

The fold's images stay in memory as uint8 (on the training device); each step gathers a batch by index, augments
it on the tensor, normalizes it and runs forward, backward and the optimizer step (`Trainer.train_step`). The
benchmark's `bench` command times the same `Trainer` methods, so what it measures is what `train_run` runs.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import precision_recall_fscore_support
from tqdm import tqdm

import methods
from benchmark.crash import crash_point
from benchmark.dataset import Prepared
from benchmark.errors import UserError
from benchmark.experiment import Experiment
from benchmark.metrics import classification_metrics
from benchmark.plan import RunSpec
from benchmark.protocol import Fold

PROGRESS_KEYS = ("history", "epoch", "best_score", "best_epoch", "stale")
RESUME_KEYS = ("model", "optimizer", "generator", "torch_rng", *PROGRESS_KEYS)

MAXIMIZE = {"val_f1": True, "val_accuracy": True, "val_macro_f1": True, "val_loss": False}


class RunFailed(Exception):
    """A run that cannot finish (NaN loss, ...): recorded as failed, the sweep goes on."""


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
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RuntimeError(f"run.device {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA "
                           f"device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1}); use auto, cuda or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"run.device {name!r} asked for, but MPS (Apple GPU) is not available here; use auto or cpu")
    return device


def batch_starts(n: int, size: int) -> list[int]:
    """Where an epoch's batches start: every `size` images, a last batch of one dropped (batch norm cannot train on it)."""
    return [start for start in range(0, n, size) if min(size, n - start) >= 2]


def check_batches(cfg: Experiment, folds: list[Fold]) -> None:
    """Refuse up front a sweep in which an epoch would have no training batch of 2 images or more: batch norm cannot
    train on one image, so a last batch of one is dropped, and an epoch of such batches would train nothing."""
    where, size = cfg.source, cfg.train.batch_size
    if size < 2:
        raise UserError(f"{where}: train.batch_size={size} is not allowed: a batch of 1 image cannot train batch norm, "
                        "so no training step would run; allowed: an integer ≥ 2 (at least the training part's size "
                        "trains on the whole part in one step per epoch)")
    for fold in folds:
        if len(fold.train) < 2:
            raise UserError(f"{where}: repeat {fold.repeat} fold {fold.fold} has {len(fold.train)} training image(s); "
                            "an epoch needs a batch of ≥ 2: add images, or lower protocol.val_fraction or protocol.folds")


def set_deterministic(enabled: bool) -> None:
    """On CUDA: deterministic cuDNN and cuBLAS kernels (an op without one warns), so that a run repeats exactly."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(enabled, warn_only=True)


def run_seed(spec: RunSpec) -> int:
    """Same for every method on the same (seed, repeat, fold): runs are paired down to the initial weights."""
    return spec.seed * 1_000_003 + spec.repeat * 1009 + spec.fold


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU tensor to the device; on CUDA through pinned memory without blocking the host."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


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
    """The fold's uint8 images on the device and the normalization from its training part."""

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

    def to_input(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> float model input (x / 255 - mean) / std, in the batch's memory format."""
        return raw.to(torch.float32, copy=True).div_(255.0).sub_(self.mean).div_(self.std)


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


class _StepMarked(torch.nn.Module):
    """A model compiled with CUDA graphs that marks a new step before each call, so that torch may reuse the
    previous call's output memory (callers copy what they keep: losses, probabilities, argmax counts)."""

    def __init__(self, compiled_model: torch.nn.Module):
        super().__init__()
        self.compiled_model = compiled_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return self.compiled_model(x)


def compiled(model: torch.nn.Module, mode: str, device: torch.device) -> torch.nn.Module:
    """torch.compile with static shapes (one graph per batch shape: training, the last batch, evaluation), in the
    given mode; on CUDA, reduce-overhead and max-autotune replay the steps as CUDA graphs."""
    out = torch.compile(model, dynamic=False, mode=None if mode == "default" else mode)
    return _StepMarked(out) if device.type == "cuda" and mode != "default" else out


def evaluate(model, objective, data: FoldData, part: str, batch_size: int, amp: bool) -> tuple[np.ndarray, float]:
    """Probabilities and mean objective value over one part, without autograd (one device sync at the end)."""
    x_all, y_all = data.parts[part]
    model.eval()
    probs, losses, sizes = [], [], []
    with torch.inference_mode():
        for start in range(0, len(y_all), batch_size):
            x = data.to_input(x_all[start : start + batch_size])
            y = y_all[start : start + batch_size]
            with _autocast(data.device, amp):
                logits = model(x)
            logits = logits.float()
            losses.append(objective(logits, y))
            sizes.append(len(y))
            probs.append(torch.softmax(logits, dim=1))
        if not probs:
            return np.zeros((0, 0)), float("nan")
        out = torch.cat(probs).cpu().double().numpy()
        loss_sum = (torch.stack(losses).cpu().double() * torch.tensor(sizes, dtype=torch.float64)).sum()
    return out, float(loss_sum) / len(y_all)


def epoch_scores(probs: np.ndarray, labels: np.ndarray, positive: int) -> dict:
    """The per-epoch selection scores (accuracy, positive-class F1, macro F1), defined as in `classification_metrics`
    but from one scikit-learn call: the epoch loop needs no calibration or AUROC."""
    pred = probs.argmax(axis=1)
    classes = list(range(probs.shape[1]))
    _, _, f1, _ = precision_recall_fscore_support(labels, pred, labels=classes, zero_division=0)
    return {"accuracy": float(np.mean(pred == labels)), "f1": float(f1[positive]), "macro_f1": float(np.mean(f1))}


def _make_optimizer(params, cfg: Experiment, device: torch.device):
    """The configured optimizer; Adam/AdamW use the fused kernel on CPU and CUDA (one kernel for all parameters)."""
    opt = cfg.train.optimizer
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay, **fused)
    if opt.name == "adamw":
        return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay, **fused)
    return torch.optim.SGD(params, lr=opt.lr, weight_decay=opt.weight_decay, momentum=opt.momentum)


def _make_scheduler(optimizer, cfg: Experiment):
    sched = cfg.train.scheduler
    if sched is None:
        return None
    if sched.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=sched.step_size, gamma=sched.gamma)


def build_model(spec: RunSpec, num_classes: int, image_size: int):
    """The backbone, wrapped by the method when the method changes the model (e.g. bilinear pooling)."""
    objective = methods.build(spec.method, **spec.method_params)
    model = methods.build_backbone(spec.backbone, num_classes, image_size, weights=spec.weights)
    return objective.wrap_model(model, num_classes), objective


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (for timing); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds `fn` takes, with the device's queued work finished before and after."""
    synchronize(device)
    tick = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - tick


class Trainer:
    """A run's model, objective, optimizer and fold data, with the steps `train_run` and `bench` share.

    Seeds torch and NumPy from the run, then builds the model: the same run always starts from the same weights.
    """

    def __init__(self, spec: RunSpec, cfg: Experiment, data: FoldData, num_classes: int):
        train_cfg = cfg.train
        self.device = data.device
        self.data = data
        self.augment = list(cfg.data.augment)
        self.batch_size = train_cfg.batch_size
        self.eval_batch_size = train_cfg.eval_batch_size
        self.amp = train_cfg.amp
        if self.device.type == "cuda":
            set_deterministic(train_cfg.deterministic)
        torch.manual_seed(run_seed(spec))
        np.random.seed(run_seed(spec) % 2**32)
        model, objective = build_model(spec, num_classes, cfg.data.image_size)
        self.model = model.to(self.device)
        if train_cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.objective = objective.to(self.device)
        self.forward = compiled(self.model, train_cfg.compile_mode, self.device) if train_cfg.compile else self.model
        self.optimizer = _make_optimizer(self.model.parameters(), cfg, self.device)
        self.scheduler = _make_scheduler(self.optimizer, cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.device.type == "cuda")
        self.gen = torch.Generator().manual_seed(run_seed(spec))

    @property
    def n_train(self) -> int:
        return len(self.data.parts["train"][1])

    def epoch_batches(self, steps: int | None = None) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """This epoch's shuffled index batches (the first `steps` of them) and their augmentation draws, copied to
        the device in one go. A batch of one sample is dropped (batch norm cannot train on it): with batch_size ≥ 2
        (`check_batches`) only ever a last one."""
        n, size = self.n_train, self.batch_size
        order = to_device(torch.randperm(n, generator=self.gen), self.device)
        draws = {k: to_device(v, self.device) for k, v in draw_augmentations(n, self.augment, self.gen).items()}
        starts = batch_starts(n, size)[:steps]
        return [(order[start : start + size], {k: v[start : start + size] for k, v in draws.items()}) for start in starts]

    def make_batch(self, idx: torch.Tensor, draws: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather the uint8 images by index, augment them, normalize: the model's float input and the labels."""
        x_train, y_train = self.data.parts["train"]
        return self.data.to_input(augment_batch(x_train[idx], draws)), y_train[idx]

    def fit_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss, backward and optimizer step on one ready batch; returns the detached loss and logits."""
        with _autocast(self.device, self.amp):
            logits = self.forward(x)
        loss = self.objective(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach()

    def train_step(self, idx: torch.Tensor, draws: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step from the uint8 images; returns the batch's loss and its number of correct predictions."""
        x, y = self.make_batch(idx, draws)
        loss, logits = self.fit_batch(x, y)
        crash_point("batch")
        return loss, (logits.argmax(1) == y).sum()

    def train_epoch(self, epoch: int, after_step: Callable[[], None] | None = None,
                    batches: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None) -> tuple[float, float]:
        """Train one epoch (or the given `batches`, by default this epoch's `epoch_batches()`); returns mean loss and
        accuracy.

        A non-finite loss fails the run: on the CPU at once, elsewhere at the end of the epoch (the losses stay on
        the device until then, so the host never waits for it mid-epoch). An epoch without a batch fails the run too.
        `after_step` is called after every step (the bench interleaves the reference script's steps there).
        """
        self.model.train()
        if batches is None:
            batches = self.epoch_batches()
        if not batches:
            raise RunFailed(f"no training batch in epoch {epoch} ({self.n_train} training images, "
                            f"batch_size {self.batch_size}); a run that takes no training step is not done")
        losses, correct = [], []
        check_now = self.device.type == "cpu"
        for step, (idx, draws) in enumerate(batches, start=1):
            loss, right = self.train_step(idx, draws)
            if check_now and not math.isfinite(float(loss)):
                raise RunFailed(f"loss is {float(loss)} at epoch {epoch} (step {step})")
            losses.append(loss)
            correct.append(right)
            if after_step is not None:
                after_step()
        sizes = torch.tensor([len(idx) for idx, _ in batches], dtype=torch.float64)
        loss_values = torch.stack(losses).cpu().double()
        bad = torch.nonzero(~torch.isfinite(loss_values))
        if len(bad):
            first = int(bad[0])
            raise RunFailed(f"loss is {float(loss_values[first])} at epoch {epoch} (step {first + 1})")
        seen = float(sizes.sum())
        return float((loss_values * sizes).sum()) / seen, float(torch.stack(correct).sum().cpu()) / seen

    def evaluate(self, part: str) -> tuple[np.ndarray, float]:
        return evaluate(self.forward, self.objective, self.data, part, self.eval_batch_size, self.amp)

    def state(self) -> dict:
        """Everything an epoch checkpoint needs to resume this trainer exactly."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "generator": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        self.gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])


def _is_better(score: float, best: float | None, select_by: str) -> bool:
    if select_by == "last" or best is None:
        return True
    return score > best if MAXIMIZE[select_by] else score < best


class Checkpoints(Protocol):
    """Where `train_run` saves and resumes a run's checkpoints (a run's folder: `benchmark.rundir.RunDir`)."""

    def save_best(self, payload: dict) -> None: ...

    def save_last(self, payload: dict) -> None: ...

    def resume_state(self, device: torch.device, keys: tuple[str, ...]) -> dict | None: ...

    def discard_last(self, problem: str) -> None: ...

    def load_best(self, device: torch.device) -> dict: ...


def _start(spec: RunSpec, cfg: Experiment, data: FoldData, num_classes: int,
           checkpoints: Checkpoints) -> tuple[Trainer, dict | None]:
    """The run's trainer, resumed from the last checkpoint when it and the best one are whole and fit (then also its
    progress: history, epoch, best_score, best_epoch, stale); else a fresh one (progress None)."""
    trainer = Trainer(spec, cfg, data, num_classes)
    state = checkpoints.resume_state(data.device, RESUME_KEYS)
    if state is None:
        return trainer, None
    try:
        trainer.load_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        checkpoints.discard_last(f"does not fit this run's model ({type(exc).__name__})")
        return Trainer(spec, cfg, data, num_classes), None
    return trainer, {key: state[key] for key in PROGRESS_KEYS}


def run_epoch(trainer: Trainer, epoch: int, positive: int,
              after_step: Callable[[], None] | None = None) -> tuple[dict, np.ndarray, float]:
    """Train one epoch and validate: the history row, the validation probabilities and loss."""
    tick = time.perf_counter()
    train_loss, train_accuracy = trainer.train_epoch(epoch, after_step=after_step)
    lr = trainer.optimizer.param_groups[0]["lr"]
    if trainer.scheduler is not None:
        trainer.scheduler.step()
    val_probs, val_loss = trainer.evaluate("val")
    if not np.isfinite(val_probs).all():
        raise RunFailed(f"epoch {epoch}: the model's validation outputs are not finite (NaN or inf): training "
                        "diverged; a lower train.optimizer.lr usually helps")
    scores = epoch_scores(val_probs, trainer.data.parts["val"][1].cpu().numpy(), positive)
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "val_loss": val_loss,
        "val_accuracy": scores["accuracy"],
        "val_f1": scores["f1"],
        "val_macro_f1": scores["macro_f1"],
        "lr": lr,
        "epoch_time_s": time.perf_counter() - tick,
    }
    return row, val_probs, val_loss


def train_run(
    spec: RunSpec,
    cfg: Experiment,
    prepared: Prepared,
    checkpoints: Checkpoints,
    device: torch.device,
    heartbeat: Callable[[], None] = lambda: None,
    show_progress: bool | str = True,
) -> RunResult:
    """Train on the fold's training part, select on its validation part, evaluate on its test part; checkpoints
    go through `checkpoints`, the predictions come back in the result (this function writes no file).
    `show_progress`: True an epoch bar, False nothing, "lines" one line per epoch on stdout (worker logs)."""
    train_cfg = cfg.train
    select_by = cfg.protocol.select_by
    fold = next(f for f in prepared.folds if f.repeat == spec.repeat and f.fold == spec.fold)
    data = FoldData(prepared, fold, device, train_cfg.channels_last)
    trainer, progress = _start(spec, cfg, data, len(prepared.class_names), checkpoints)
    history: list[dict] = []
    start_epoch, best_score, best_epoch, stale = 1, None, 0, 0
    if progress is not None:
        history = list(progress["history"])
        start_epoch, best_score = progress["epoch"] + 1, progress["best_score"]
        best_epoch, stale = progress["best_epoch"], progress["stale"]
        print(f"{spec.run_id}: resumed at epoch {start_epoch} of {train_cfg.epochs} (epochs 1-{start_epoch - 1} were "
              "saved before the interruption)", file=sys.stderr)
    best_val: tuple[np.ndarray, float] | None = None
    epochs = range(start_epoch, train_cfg.epochs + 1)
    bar = tqdm(epochs, desc=f"  {spec.method}/{spec.backbone} f{spec.fold}", unit="ep", leave=False,
               file=sys.stderr, disable=show_progress is not True, initial=start_epoch - 1, total=train_cfg.epochs)
    for epoch in bar:
        if train_cfg.early_stopping and stale >= train_cfg.early_stopping.patience:
            break
        row, val_probs, val_loss = run_epoch(trainer, epoch, prepared.positive)
        history.append(row)
        score = row[select_by] if select_by != "last" else epoch
        if _is_better(score, best_score, select_by):
            best_score, best_epoch, stale = score, epoch, 0
            best_val = (val_probs, val_loss)
            checkpoints.save_best({"model": trainer.model.state_dict(), "epoch": epoch})
        else:
            stale += 1
        checkpoints.save_last(
            trainer.state() | {
                "history": history,
                "epoch": epoch,
                "best_score": best_score,
                "best_epoch": best_epoch,
                "stale": stale,
            },
        )
        heartbeat()
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", **{select_by: f"{row.get(select_by, epoch):.3f}"})
        if show_progress == "lines":
            print(f"{time.strftime('%H:%M:%S')} {spec.run_id} {spec.method}/{spec.backbone} fold {spec.fold}: epoch "
                  f"{epoch}/{train_cfg.epochs} train_loss {row['train_loss']:.4f} {select_by} "
                  f"{row.get(select_by, epoch):.4f} ({row['epoch_time_s']:.1f} s)", flush=True)
    bar.close()
    model = trainer.model
    model.load_state_dict(checkpoints.load_best(device)["model"])
    if best_val is None:
        best_val = trainer.evaluate("val")
    val_labels = data.parts["val"][1].cpu().numpy()
    val = classification_metrics(best_val[0], val_labels, prepared.positive)
    val["loss"] = best_val[1]
    test_probs, _ = evaluate(model, trainer.objective, data, "test", trainer.eval_batch_size, trainer.amp)
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
    return RunResult(val, test, best_epoch, len(history), frame, predictions, len(fold.train), len(fold.val), len(fold.test))
