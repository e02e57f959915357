"""The results store: the experiment's output folder, its runs (each a `RunDir`), the tidy tables rebuilt from the
records, and the runs' leases (benchmark/leases.py)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from benchmark import leases
from benchmark.atomic import atomic_write_csv, atomic_write_text, remove_temp_files
from benchmark.crash import crash_point
from benchmark.errors import UserError
from benchmark.record import RunRecord
from benchmark.rundir import EPOCHS, RECORD, RunDir, read_epochs_file, read_record_file, set_aside, warn_damaged

PLAN_FILE = "plan.json"


class Store:
    """Files under one experiment's output folder (see docs/results-schema.md)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._leases: dict[str, int] = {}

    def create(self, where: str = "run.output") -> None:
        """Make the output folder and check it is writable; on failure remove the folders made and raise UserError."""
        made, folder = [], self.root.absolute()
        while not folder.exists() and folder != folder.parent:
            made.append(folder)
            folder = folder.parent
        probe = self.root / f".write-test-{os.getpid()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok")
        except OSError as exc:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)
            for path in made:
                with contextlib.suppress(OSError):
                    path.rmdir()
            raise UserError(
                f"{where}: output folder {self.root} cannot be created or written ({exc.strerror or exc}); "
                "set run.output to a writable folder"
            ) from None
        probe.unlink()

    def remove_temp_files(self) -> None:
        """Temp files a killed process left in the experiment folder; call while holding `locked()`."""
        remove_temp_files(self.root)

    def run(self, run_id: str) -> RunDir:
        """The folder of one run, owner of every file in it."""
        return RunDir(self.root / "runs" / run_id)

    def run_dirs(self) -> list[RunDir]:
        """Every run folder under runs/, by run id."""
        return [RunDir(p) for p in sorted((self.root / "runs").glob("*")) if p.is_dir()]

    def read_record(self, run_id: str) -> RunRecord | None:
        """The run's record; None when it has none or only a damaged one (`damaged` says which)."""
        return self.run(run_id).read_record()[0]

    def read_history(self, run_id: str) -> pd.DataFrame | None:
        """The run's epoch history (epochs.csv), or None if it has none or it cannot be read."""
        return self.run(run_id).read_epochs()[0]

    def write_record(self, record: RunRecord | dict) -> None:
        """Write a run's record (a flat JSON object is read as a `RunRecord` first, so it is checked the same)."""
        record = record if isinstance(record, RunRecord) else RunRecord.from_json(record)
        self.run(record.run_id).write_record(record)

    def write_plan(self, run_ids: list[str]) -> None:
        """Record which runs the current config plans (`plan.json`): the tables show these, older records stay on disk."""
        atomic_write_text(self.root / PLAN_FILE, json.dumps({"run_ids": run_ids}))

    def planned_ids(self) -> set[str] | None:
        """The run ids of the config that last ran here; None for a folder without a (readable) plan.json."""
        try:
            plan = json.loads((self.root / PLAN_FILE).read_text())
        except (OSError, ValueError):
            return None
        ids = plan.get("run_ids") if isinstance(plan, dict) else None
        return set(ids) if isinstance(ids, list) else None

    def current_records(self) -> tuple[list[RunRecord], list[RunRecord]]:
        """(records of the planned runs, superseded records of runs the current config no longer plans)."""
        planned = self.planned_ids()
        records = self.records()
        if planned is None:
            return records, []
        return ([r for r in records if r.run_id in planned], [r for r in records if r.run_id not in planned])

    def records(self, quiet: bool = False) -> list[RunRecord]:
        """Every whole record; a damaged one (impossible values included) is left out, with a warning line unless
        `quiet`."""
        out = []
        for path in sorted((self.root / "runs").glob(f"*/{RECORD}")):
            record, problem = read_record_file(path)
            if record is not None:
                out.append(record)
            elif problem and not quiet:
                warn_damaged(path, problem)
        return out

    def damaged(self) -> list[tuple[Path, str]]:
        """Every damaged record.json and epochs.csv under runs/, with what is wrong with it."""
        return [found for run in self.run_dirs() for found in run.damaged()]

    def set_aside_damaged(self) -> None:
        """Move every damaged record.json and epochs.csv aside (`set_aside`); call while holding `locked()`."""
        for path, problem in self.damaged():
            set_aside(path, problem)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock on the experiment folder (experiment files, table rebuilds) among processes sharing it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with leases.locked(self.root / ".lock"):
            yield

    def rebuild_tables(self) -> pd.DataFrame:
        """Regenerate results.csv and epochs.csv from the records of the planned runs (atomic, one process at a time)."""
        with self.locked():
            results = results_frame(self.current_records()[0])
            atomic_write_csv(self.root / "results.csv", results)
            epochs = _concat_epochs(self.run(run_id).epochs_path for run_id in results.get("run_id", []))
            atomic_write_csv(self.root / "epochs.csv", epochs)
        return results

    # Leases: one process trains a run at a time (see benchmark/leases.py).
    def lease_path(self, run_id: str) -> Path:
        return self.run(run_id).lease_path

    def acquire(self, run_id: str) -> bool:
        """Take the run's lease (False: another live process holds it); clears temp files a killed owner left."""
        run = self.run(run_id)
        fd = leases.take(run.lease_path)
        if fd is None:
            return False
        self._leases[run_id] = fd
        crash_point("lease")
        run.remove_temp_files()
        return True

    def heartbeat(self, run_id: str) -> None:
        """Refresh the lease's mtime (called after every epoch, also by remote workers)."""
        leases.heartbeat(self.lease_path(run_id))

    def lease_owner(self, run_id: str) -> dict | None:
        """Who is training this run now ({pid, host, time, heartbeat_age_s}), or None (see `leases.owner`)."""
        return leases.owner(self.lease_path(run_id))

    def release(self, run_id: str) -> None:
        fd = self._leases.pop(run_id, None)
        if fd is not None:
            leases.give_back(self.lease_path(run_id), fd)


def results_frame(records: list[RunRecord]) -> pd.DataFrame:
    """The tidy table: one row per run (`RunRecord.row`), sorted by method label, backbone, repeat, fold, seed."""
    frame = pd.DataFrame([record.row() for record in records])
    if not frame.empty:
        order = [c for c in ("method_label", "backbone", "repeat", "fold", "seed") if c in frame]
        frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    return frame


def load_results(output_dir: str | Path) -> pd.DataFrame:
    """The results table of an experiment output folder (rebuilt from the records, so never stale): the runs the
    current config plans; `attrs["superseded"]` counts the older records left out."""
    store = Store(output_dir)
    if not (store.root / "runs").is_dir():
        raise UserError(f"{output_dir}: no results here (expected a runs/ folder written by `benchmark run`)")
    current, superseded = store.current_records()
    results = results_frame(current)
    results.attrs["superseded"] = len(superseded)
    return results


def load_epochs(output_dir: str | Path) -> pd.DataFrame:
    """The per-epoch history of every run (a damaged run history is left out with a warning line)."""
    return _concat_epochs(sorted(Path(output_dir).glob(f"runs/*/{EPOCHS}")))


def _concat_epochs(paths) -> pd.DataFrame:
    """The whole epoch histories among `paths`, one table; a damaged one is left out with a warning line."""
    parts = []
    for path in paths:
        frame, problem = read_epochs_file(path)
        if frame is not None:
            parts.append(frame)
        elif problem:
            warn_damaged(path, problem)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
