"""The results store: one atomic record per run, tidy tables rebuilt from the records, run leases."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import UserError

LEASE_STALE_S = 120.0
PLAN_FILE = "plan.json"
CRASH_ENV = "SOLDERBENCH_CRASH_AT"
RECORD_KEYS = ("run_id", "method", "method_label", "backbone", "fold", "repeat", "seed", "status")
STATUSES = ("done", "failed")
EPOCH_KEYS = ("run_id", "epoch")
# What becomes of a run when one of its files is damaged (see docs/results-schema.md, "Damaged files").
DAMAGE_EFFECT = {
    "record.json": "the run counts as pending and is trained again",
    "epochs.csv": "its epochs are left out of epochs.csv (the run's record is kept)",
    "last.pt": "the run starts from scratch",
    "best.pt": "the run starts from scratch",
}
_crash_counts: dict[str, int] = {}
_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), so that atomic writes give files
os.umask(_UMASK)          # the mode a plain open() would, not mkstemp's 0600


def crash_point(where: str) -> None:
    """Fault injection for the kill tests: with $SOLDERBENCH_CRASH_AT=WHERE:N, SIGKILL this process at the N-th WHERE."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    target, _, count = spec.rpartition(":")
    if target != where:
        return
    _crash_counts[where] = _crash_counts.get(where, 0) + 1
    if _crash_counts[where] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def atomic_path(path: Path, crash_at: str | None = None) -> Iterator[Path]:
    """A temp file beside `path` to write into, renamed onto `path` when the block ends (after the crash point
    `crash_at`, default write:NAME) and removed when it raises; readers never see half a file. An OSError names
    `path` when it names no file or only the temp one (a full disk fails a write(), which names none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        os.fchmod(fd, 0o666 & ~_UMASK)
        os.close(fd)
        yield tmp
        crash_point(crash_at or f"write:{path.name}")
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        temp_only = exc.filename is None or os.path.basename(str(exc.filename)).startswith(f".{path.name}.")
        if exc.errno is not None and temp_only:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # name the target, not the temp file
        raise
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + fsync + rename: readers never see half a file."""
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _remove_temp_files(folder: Path) -> None:
    """Temp files left by a killed writer (`.NAME.*.tmp`); only called while no live process writes there."""
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


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


def read_record_file(path: Path) -> tuple[dict | None, str]:
    """The record in `path` and '' when it is a whole one (a JSON object for the run of its folder, with the identity
    keys and status done or failed); else None and what is wrong ('' when there is no file)."""
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except ValueError:
        return None, "is not valid JSON"
    if not isinstance(record, dict):
        return None, f"holds a JSON {type(record).__name__}, not a record"
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        return None, f"is not a whole record (no {', '.join(missing)})"
    if record["run_id"] != path.parent.name or record["status"] not in STATUSES:
        return None, f"is not a record of run {path.parent.name} with status done or failed"
    return record, ""


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
        _remove_temp_files(self.root)

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def record_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "record.json"

    def read_record(self, run_id: str) -> dict | None:
        """The run's record; None when it has none or only a damaged one (`damaged` says which)."""
        return read_record_file(self.record_path(run_id))[0]

    def read_history(self, run_id: str) -> pd.DataFrame | None:
        """The run's epoch history (epochs.csv), or None if it has none or it cannot be read."""
        path = self.run_dir(run_id) / "epochs.csv"
        return read_epochs_file(path)[0] if path.is_file() else None

    def write_record(self, record: dict) -> None:
        atomic_write_text(self.record_path(record["run_id"]), json.dumps(record, default=_json_default, indent=1))

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

    def current_records(self) -> tuple[list[dict], list[dict]]:
        """(records of the planned runs, superseded records of runs the current config no longer plans)."""
        planned = self.planned_ids()
        records = self.records()
        if planned is None:
            return records, []
        return ([r for r in records if r.get("run_id") in planned],
                [r for r in records if r.get("run_id") not in planned])

    def records(self, quiet: bool = False) -> list[dict]:
        """Every whole record; a damaged one is left out, with a warning line unless `quiet`."""
        out = []
        for path in sorted((self.root / "runs").glob("*/record.json")):
            record, problem = read_record_file(path)
            if record is not None:
                out.append(record)
            elif problem and not quiet:
                warn_damaged(path, problem)
        return out

    def damaged(self) -> list[tuple[Path, str]]:
        """Every damaged record.json and epochs.csv under runs/, with what is wrong with it."""
        found = []
        for run_dir in sorted(p for p in (self.root / "runs").glob("*") if p.is_dir()):
            for path, problem in ((run_dir / "record.json", read_record_file(run_dir / "record.json")[1]),
                                  (run_dir / "epochs.csv", read_epochs_file(run_dir / "epochs.csv")[1])):
                if problem:
                    found.append((path, problem))
        return found

    def set_aside_damaged(self) -> None:
        """Move every damaged record.json and epochs.csv aside (`set_aside`); call while holding `locked()`."""
        for path, problem in self.damaged():
            set_aside(path, problem)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock on the experiment folder (experiment files, table rebuilds) among processes sharing it."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            _lock(fd, blocking=True)
            yield
        finally:
            os.close(fd)

    def rebuild_tables(self) -> pd.DataFrame:
        """Regenerate results.csv and epochs.csv from the records of the planned runs (atomic, one process at a time)."""
        with self.locked():
            results = results_frame(self.current_records()[0])
            atomic_write_csv(self.root / "results.csv", results)
            epochs = _concat_epochs(self.run_dir(run_id) / "epochs.csv" for run_id in results.get("run_id", []))
            atomic_write_csv(self.root / "epochs.csv", epochs)
        return results

    # Leases: one process trains a run at a time. The lease file is held with an exclusive flock, which the kernel
    # drops when its process dies (kill -9 included), so a killed owner's lease is free at once. Where locks do not
    # reach across hosts, a lease written by another host counts as held while its heartbeat is fresh; on a file
    # system without locks, a lease of this host counts as held while its owner's process lives.
    def lease_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "lease.json"

    def acquire(self, run_id: str) -> bool:
        """Take the run's lease (False: another live process holds it); clears temp files a killed owner left."""
        path = self.lease_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            kernel_lock = _lock(fd, blocking=False)
            if kernel_lock is False:
                os.close(fd)
                return False
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                os.close(fd)
                continue
            lease = _read_lease(fd)
            if lease is not None and _owner_alive(*lease, kernel_lock=kernel_lock is True):
                os.close(fd)
                return False
            me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, me, 0)
            os.fsync(fd)
            self._leases[run_id] = fd
            crash_point("lease")
            _remove_temp_files(path.parent)
            return True
        return False

    def heartbeat(self, run_id: str) -> None:
        """Refresh the lease's mtime (called after every epoch, also by remote workers)."""
        crash_point("heartbeat")
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.lease_path(run_id))

    def lease_owner(self, run_id: str) -> dict | None:
        """Who is training this run now ({pid, host, time, heartbeat_age_s}), or None; only reads the lease (no lock is
        taken, so a `run` starting beside it is never turned away). Same host: while the owner's process lives;
        another host: while its heartbeat is fresh."""
        try:
            fd = os.open(self.lease_path(run_id), os.O_RDONLY)
        except OSError:
            return None
        try:
            lease = _read_lease(fd)
        finally:
            os.close(fd)
        if lease is None or not _owner_alive(*lease, kernel_lock=False):
            return None
        owner, age = lease
        return {**owner, "heartbeat_age_s": age}

    def release(self, run_id: str) -> None:
        fd = self._leases.pop(run_id, None)
        if fd is None:
            return
        self.lease_path(run_id).unlink(missing_ok=True)
        os.close(fd)


def _lock(fd: int, blocking: bool) -> bool | None:
    """flock the file: True when locked, False when another process holds it, None on a file system without locks
    (e.g. Lustre mounted without -o flock), where leases fall back to the owner's pid and heartbeat."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise
    return True


def _read_lease(fd: int) -> tuple[dict, float] | None:
    """The owner written in a lease file ({pid, host, time}) and its heartbeat's age in seconds; None if unreadable."""
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
        age = time.time() - os.fstat(fd).st_mtime
    except (ValueError, OSError):
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("host"), str) or type(owner.get("pid")) is not int:
        return None
    return owner, age


def _owner_alive(owner: dict, age: float, kernel_lock: bool) -> bool:
    """Whether a lease's owner still holds it: on another host while its heartbeat is fresh; on this host, without
    kernel locks, while its process lives (with a kernel lock in hand the owner is gone)."""
    if owner["host"] != socket.gethostname():
        return age < LEASE_STALE_S
    if kernel_lock or owner.get("pid") == os.getpid():
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, KeyError):
        return True
    return True


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
    return _concat_epochs(sorted(Path(output_dir).glob("runs/*/epochs.csv")))


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


def warn_damaged(path: Path, problem: str) -> None:
    """One warning line for a damaged file a reader leaves out (`run` moves it aside: `Store.set_aside_damaged`)."""
    warn(f"{path}: {problem}; {DAMAGE_EFFECT[path.name]} (`run` moves the file aside)")
