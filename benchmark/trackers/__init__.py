"""Trackers (`run.trackers: [mlflow, tensorboard]`): every finished run also goes to MLflow and/or TensorBoard.

The records stay the source of truth; a tracker is a view written after each run is recorded, by the process that
drives the sweep. `sync` logs every finished record the tracker does not hold yet, so a resumed sweep fills in
what a killed one missed and never logs a run twice. A tracker that fails warns once per problem and the sweep
goes on: it never fails or loses a run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol

import pandas as pd

from benchmark.errors import UserError

INSTALL = {"mlflow": "pip install -e '.[mlflow]'", "tensorboard": "pip install -e '.[tensorboard]'"}
MODULES = {"mlflow": "mlflow", "tensorboard": "tensorboard"}


class Tracker(Protocol):
    name: str

    def logged(self) -> set[str]:
        """Run ids this tracker already holds (read once at start)."""

    def log_run(self, record: dict, history: pd.DataFrame | None) -> None:
        """Log one finished run (its parameters, per-epoch metrics and final metrics)."""

    def close(self) -> None:
        """Finish what is open (e.g. the sweep's parent run)."""


def check_installed(trackers: list[str], where: str) -> None:
    """Each requested tracker's library is importable; else a one-line config error saying what to install."""
    import importlib.util

    for name in trackers:
        if importlib.util.find_spec(MODULES[name]) is None:
            raise UserError(f"{where}: run.trackers: {name!r} needs {name} installed ({INSTALL[name]}); "
                            f"or drop it from run.trackers")


def warn(tracker: str, exc: BaseException, said: set[str] | None = None) -> None:
    """A warning line, once per distinct problem when `said` collects what was said (a tracker failing on every
    run says so once)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    line = f"warning: {tracker} tracker: {type(exc).__name__}: {text[:300]}; the run is recorded, the sweep goes on"
    if said is None or line not in said:
        print(line, file=sys.stderr)
    if said is not None:
        said.add(line)


class Trackers:
    """The sweep's trackers; `sync` logs the finished records each one lacks, never raising."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers
        self.said: set[str] = set()
        self.held: dict[str, set[str]] = {}
        for tracker in list(trackers):
            try:
                self.held[tracker.name] = tracker.logged()
            except Exception as exc:  # noqa: BLE001 - a tracker never stops the sweep
                warn(tracker.name, exc)
                self.trackers.remove(tracker)

    def sync(self, records: list[dict], history_of) -> None:
        """Log every finished record (done or failed) a tracker does not hold yet; `history_of(run_id)` → epochs."""
        for tracker in self.trackers:
            for record in records:
                run_id = record.get("run_id")
                if run_id in self.held[tracker.name] or record.get("status") not in ("done", "failed"):
                    continue
                try:
                    tracker.log_run(record, history_of(run_id))
                except Exception as exc:  # noqa: BLE001 - a tracker never fails or loses a run
                    warn(tracker.name, exc, self.said)
                    continue
                self.held[tracker.name].add(run_id)

    def close(self) -> None:
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as exc:  # noqa: BLE001
                warn(tracker.name, exc)


def open_trackers(names: list[str], output: Path, experiment: str, config: dict, tracking_uri: str | None) -> Trackers:
    """The trackers `run.trackers` names, writing into the output folder unless `tracking_uri` says otherwise."""
    made: list[Tracker] = []
    for name in names:
        try:
            if name == "mlflow":
                from benchmark.trackers.mlflow import MlflowTracker

                made.append(MlflowTracker(output, experiment, config, tracking_uri))
            elif name == "tensorboard":
                from benchmark.trackers.tensorboard import TensorboardTracker

                made.append(TensorboardTracker(output))
        except Exception as exc:  # noqa: BLE001 - a tracker that cannot start is skipped, with one warning
            text = (str(exc).splitlines() or [""])[0][:300]
            print(f"warning: {name} tracker: {type(exc).__name__}: {text}; the sweep goes on without it",
                  file=sys.stderr)
    return Trackers(made)
