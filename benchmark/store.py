"""The results store: one atomic record per run, tidy tables rebuilt from the records, run leases."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import UserError

LEASE_STALE_S = 120.0


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + fsync + rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


class Store:
    """Files under one experiment's output folder (see docs/results-schema.md)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def ensure_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"run.output {self.root} is not writable ({exc.strerror or exc}); choose another folder") from None

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def record_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "record.json"

    def read_record(self, run_id: str) -> dict | None:
        path = self.record_path(run_id)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            return None

    def write_record(self, record: dict) -> None:
        atomic_write_text(self.record_path(record["run_id"]), json.dumps(record, default=_json_default, indent=1))

    def records(self) -> list[dict]:
        out = []
        for path in sorted((self.root / "runs").glob("*/record.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (json.JSONDecodeError, OSError):
                continue
        return out

    def rebuild_tables(self) -> pd.DataFrame:
        """Regenerate results.csv and epochs.csv from the per-run files (atomic)."""
        results = results_frame(self.records())
        atomic_write_csv(self.root / "results.csv", results)
        parts = []
        for run_id in results.get("run_id", []):
            path = self.run_dir(run_id) / "epochs.csv"
            if path.exists():
                parts.append(pd.read_csv(path))
        epochs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        atomic_write_csv(self.root / "epochs.csv", epochs)
        return results

    # Leases: one process trains a run at a time; a lease whose owner died (or went silent) is taken over.
    def lease_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "lease.json"

    def acquire(self, run_id: str) -> bool:
        path = self.lease_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not self._stale(path):
                    return False
                stale = path.with_name(f"lease.stale.{os.getpid()}")
                try:
                    os.replace(path, stale)
                    stale.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            return True
        return False

    def heartbeat(self, run_id: str) -> None:
        path = self.lease_path(run_id)
        try:
            os.utime(path)
        except FileNotFoundError:
            pass

    def release(self, run_id: str) -> None:
        self.lease_path(run_id).unlink(missing_ok=True)

    @staticmethod
    def _stale(path: Path) -> bool:
        try:
            owner = json.loads(path.read_text())
            age = time.time() - path.stat().st_mtime
        except (json.JSONDecodeError, OSError):
            return True
        if owner.get("host") == socket.gethostname():
            try:
                os.kill(int(owner["pid"]), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return owner["pid"] == os.getpid()
        return age > LEASE_STALE_S


def results_frame(records: list[dict]) -> pd.DataFrame:
    """The tidy table: one row per run, JSON-encoding nested values."""
    rows = []
    for record in records:
        row = {}
        for key, value in record.items():
            row[key] = json.dumps(value, default=_json_default) if isinstance(value, (dict, list)) else value
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        order = [c for c in ("method_label", "backbone", "repeat", "fold", "seed") if c in frame]
        frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    return frame


def load_results(output_dir: str | Path) -> pd.DataFrame:
    """The results table of an experiment output folder (rebuilt from the records, so never stale)."""
    store = Store(output_dir)
    if not (store.root / "runs").is_dir():
        raise UserError(f"{output_dir}: no results here (expected a runs/ folder written by `benchmark run`)")
    return results_frame(store.records())


def load_epochs(output_dir: str | Path) -> pd.DataFrame:
    parts = [pd.read_csv(p) for p in sorted(Path(output_dir).glob("runs/*/epochs.csv"))]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
