"""One run's folder (`<output>/runs/<run_id>/`): the one module that names, reads and writes the files in it.

record.json (the commit point of a finished run), epochs.csv (its epoch history), predictions.csv (its test
predictions), last.pt / best.pt (resume and selected checkpoints), error.txt (the traceback of a failed run) and
lease.json (who trains it now, see benchmark/leases.py). See docs/results-schema.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from benchmark.atomic import atomic_path, atomic_write_csv, atomic_write_text, remove_temp_files
from benchmark.record import RunRecord, json_default, parse_record

RECORD, EPOCHS, PREDICTIONS = "record.json", "epochs.csv", "predictions.csv"
LAST, BEST, ERROR, LEASE = "last.pt", "best.pt", "error.txt", "lease.json"
EPOCH_KEYS = ("run_id", "epoch")
# What becomes of a run when one of its files is damaged (see docs/results-schema.md, "Damaged files").
DAMAGE_EFFECT = {
    RECORD: "the run counts as pending and is trained again",
    EPOCHS: "its epochs are left out of epochs.csv (the run's record is kept)",
    LAST: "the run starts from scratch",
    BEST: "the run starts from scratch",
}


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def set_aside(path: Path, problem: str) -> Path | None:
    """Rename a damaged file of the tool's own to NAME.damaged-TIME beside it (never delete it), with one warning line
    naming both and what becomes of the run; None when another process moved it first."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = path.with_name(f"{path.name}.damaged-{stamp}"), 1
    while target.exists():
        target, n = path.with_name(f"{path.name}.damaged-{stamp}-{n}"), n + 1
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    warn(f"{path}: {problem}; moved aside to {target.name}; {DAMAGE_EFFECT[path.name]}")
    return target


def warn_damaged(path: Path, problem: str) -> None:
    """One warning line for a damaged file a reader leaves out (`run` moves it aside: `Store.set_aside_damaged`)."""
    warn(f"{path}: {problem}; {DAMAGE_EFFECT[path.name]} (`run` moves the file aside)")


def read_record_file(path: Path) -> tuple[RunRecord | None, str]:
    """The record in `path` and '' when it is a whole one (a `RunRecord` of the run of its folder, every value
    possible); else None and what is wrong ('' when no file)."""
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except ValueError:
        return None, "is not valid JSON"
    record, problem = parse_record(raw)
    if record is not None and record.run_id != path.parent.name:
        return None, f"is not a record of run {path.parent.name}"
    return record, problem


def read_epochs_file(path: Path) -> tuple[pd.DataFrame | None, str]:
    """A run's epoch history and '' when whole (a CSV table of its run with the epoch column and a row at least);
    else None and what is wrong ('' when there is no file). run_id is read as text."""
    try:
        frame = pd.read_csv(path, dtype={"run_id": str})
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as exc:
        return None, f"is not a readable CSV table ({type(exc).__name__})"
    if any(key not in frame for key in EPOCH_KEYS) or frame.empty or not (frame["run_id"] == path.parent.name).all():
        return None, (f"is not an epoch history of run {path.parent.name} "
                      f"(expected columns {', '.join(EPOCH_KEYS)} and a row per epoch)")
    return frame, ""


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save `payload` atomically (crash point `checkpoint`)."""
    with atomic_path(path, crash_at="checkpoint") as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: Path, device: torch.device, keys: tuple[str, ...]) -> dict | None:
    """A checkpoint holding `keys`, or None: missing, or damaged (then set aside with a warning)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling, zip and EOF errors alike mean a damaged file
        set_aside(path, f"is not a readable checkpoint ({type(exc).__name__})")
        return None
    if not isinstance(state, dict) or any(key not in state for key in keys):
        set_aside(path, f"is not a checkpoint of this run (expected {', '.join(keys)})")
        return None
    return state


class RunDir:
    """The folder of one run and every file in it; also the `Checkpoints` that `train_run` saves through."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def record_path(self) -> Path:
        return self.path / RECORD

    @property
    def epochs_path(self) -> Path:
        return self.path / EPOCHS

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def lease_path(self) -> Path:
        return self.path / LEASE

    @property
    def last_path(self) -> Path:
        return self.path / LAST

    @property
    def best_path(self) -> Path:
        return self.path / BEST

    def read_record(self) -> tuple[RunRecord | None, str]:
        """The run's record and '', or None and what is wrong with it ('' when it has none)."""
        return read_record_file(self.record_path)

    def write_record(self, record: RunRecord) -> None:
        """Write the record (the commit point of a finished run) atomically, as its flat JSON."""
        atomic_write_text(self.record_path, json.dumps(record.to_json(), default=json_default, indent=1))

    def read_epochs(self) -> tuple[pd.DataFrame | None, str]:
        return read_epochs_file(self.epochs_path)

    def write_epochs(self, history: pd.DataFrame) -> None:
        atomic_write_csv(self.epochs_path, history)

    def read_predictions(self) -> pd.DataFrame | None:
        """The run's test predictions (file, label, pred, prob_<class>...), None when it has none."""
        return pd.read_csv(self.predictions_path) if self.predictions_path.is_file() else None

    def write_predictions(self, predictions: pd.DataFrame) -> None:
        atomic_write_csv(self.predictions_path, predictions)

    def write_error(self, text: str) -> None:
        """The traceback of a failed run (error.txt)."""
        atomic_write_text(self.path / ERROR, text)

    def damaged(self) -> list[tuple[Path, str]]:
        """The run's damaged record.json and epochs.csv, each with what is wrong with it."""
        found = [(self.record_path, self.read_record()[1]), (self.epochs_path, self.read_epochs()[1])]
        return [(path, problem) for path, problem in found if problem]

    def remove_temp_files(self) -> None:
        """Temp files a killed owner left here; call while holding the run's lease."""
        remove_temp_files(self.path)

    # Checkpoints (the protocol train_run saves and resumes through).
    def save_best(self, payload: dict) -> None:
        save_checkpoint(self.best_path, payload)

    def save_last(self, payload: dict) -> None:
        save_checkpoint(self.last_path, payload)

    def resume_state(self, device: torch.device, keys: tuple[str, ...]) -> dict | None:
        """last.pt when it holds `keys` and it and best.pt are whole (a damaged one is set aside, with a warning);
        else None."""
        state = read_checkpoint(self.last_path, device, keys)
        if state is None:
            return None
        if not self.best_path.exists():
            warn(f"{self.last_path}: cannot be resumed from without {BEST}; {DAMAGE_EFFECT[LAST]}")
            return None
        if read_checkpoint(self.best_path, torch.device("cpu"), ("model",)) is None:
            return None
        return state

    def saved_epoch(self) -> int | None:
        """The epoch last.pt was saved at (a run interrupted there resumes after it); None without a readable one.
        Read-only: a damaged file is left where it is (only `run` sets files aside)."""
        if not self.last_path.is_file():
            return None
        try:
            state = torch.load(self.last_path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - damaged or being written: no epoch to show
            return None
        epoch = state.get("epoch") if isinstance(state, dict) else None
        return epoch if isinstance(epoch, int) else None

    def discard_last(self, problem: str) -> None:
        """Set last.pt aside: it is whole but does not fit the run (`problem`)."""
        set_aside(self.last_path, problem)

    def load_best(self, device: torch.device) -> dict:
        """The selected checkpoint ({model, epoch})."""
        return torch.load(self.best_path, map_location=device, weights_only=True)

    def has_best(self) -> bool:
        return self.best_path.is_file()

    def drop_last(self) -> None:
        """Remove the resume checkpoint of a recorded run."""
        self.last_path.unlink(missing_ok=True)
