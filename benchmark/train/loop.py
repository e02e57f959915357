"""Train one run on one fold: epochs with inner validation, model selection, epoch checkpoints and resume, test.

The fold's images stay in memory as uint8 (on the training device); each step gathers a batch by index, augments
it on the tensor, normalizes it and runs forward, backward and the optimizer step (`Trainer.train_step`). The
benchmark's `bench` command times the same `Trainer` methods, so what it measures is what `train_run` runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from benchmark.dataset import Prepared
from benchmark.experiment import Experiment
from benchmark.plan import RunSpec
from benchmark.train.batches import FoldData
from benchmark.train.evaluation import epoch_scores, evaluate, require_finite, scored
from benchmark.train.trainer import Trainer

PROGRESS_KEYS = ("history", "epoch", "best_score", "best_epoch", "stale")
RESUME_KEYS = ("model", "optimizer", "generator", "torch_rng", *PROGRESS_KEYS)

MAXIMIZE = {"val_f1": True, "val_accuracy": True, "val_macro_f1": True, "val_loss": False}


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
    require_finite(val_probs, f"epoch {epoch}: the model's validation outputs")
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
    val = scored(best_val[0], val_labels, prepared.positive, "the selected model's validation outputs")
    val["loss"] = best_val[1]
    test_probs, _ = evaluate(model, trainer.objective, data, "test", trainer.eval_batch_size, trainer.amp)
    test_labels = data.parts["test"][1].cpu().numpy()
    test = scored(test_probs, test_labels, prepared.positive, "the selected model's test outputs")
    names = prepared.files.relative()
    predictions = pd.DataFrame(
        {"file": [names[i] for i in fold.test], "label": test_labels, "pred": test_probs.argmax(1)}
        | {f"prob_{c}": test_probs[:, k] for k, c in enumerate(prepared.class_names)}
    )
    frame = pd.DataFrame(history)
    return RunResult(val, test, best_epoch, len(history), frame, predictions, len(fold.train), len(fold.val), len(fold.test))
