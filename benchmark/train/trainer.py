"""A run's trainer: the method built once and told the training part's classes, the model, optimizer and
scheduler, and the steps `train_run` and `bench` share."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

import methods
from benchmark.crash import crash_point
from benchmark.experiment import Experiment
from benchmark.plan import RunSpec
from benchmark.train.batches import FoldData, augment_batch, batch_starts, draw_augmentations
from benchmark.train.device import _autocast, compiled, set_deterministic, to_device
from benchmark.train.evaluation import RunFailed, evaluate
from methods.base import Method


def run_seed(spec: RunSpec) -> int:
    """Same for every method on the same (seed, repeat, fold): runs are paired down to the initial weights."""
    return spec.seed * 1_000_003 + spec.repeat * 1009 + spec.fold


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


def build_method(spec: RunSpec, class_names: list[str], class_counts: list[int]) -> Method:
    """The run's method, built once per run: its parameters checked, the task checked once (`check_task`), then told
    the training part's images per class and the class names (`prepare`), before any training step."""
    method = methods.build(spec.method, **spec.method_params)
    method.check_task(len(class_names))
    method.prepare(list(class_counts), list(class_names))
    return method


def build_model(spec: RunSpec, num_classes: int, image_size: int, method: Method | None = None):
    """The backbone, wrapped by the method when the method changes the model (e.g. bilinear pooling); without
    `method` (loading a checkpoint to explain it) the method is built from the spec, untrained and unprepared."""
    method = method if method is not None else methods.build(spec.method, **spec.method_params)
    model = methods.build_backbone(spec.backbone, num_classes, image_size, weights=spec.weights)
    return method.wrap_model(model, num_classes), method


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
        method = build_method(spec, data.class_names, data.class_counts)
        model, objective = build_model(spec, num_classes, cfg.data.image_size, method)
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
