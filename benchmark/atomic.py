"""Atomic file writes (temp file beside the target, fsync, rename): a reader never sees half a file, a crash
leaves the old file or the new one, and a failed write leaves no temp file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from benchmark.crash import crash_point

if TYPE_CHECKING:  # pandas loads on first use: the CLI's parser imports this module
    import pandas as pd

_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), so that atomic writes give files
os.umask(_UMASK)          # the mode a plain open() would, not mkstemp's 0600


@contextlib.contextmanager
def atomic_path(path: Path, crash_at: str | None = None) -> Iterator[Path]:
    """A temp file beside `path` to write into, renamed onto `path` when the block ends (after the crash point
    `crash_at`, default write:NAME) and removed when it raises; readers never see half a file. An OSError names
    `path` when it names no file or only the temp one (a full disk fails a write(), which names none)."""
    path = Path(path)
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


def atomic_write(path: Path, write: Callable[[IO[bytes]], object], crash_at: str | None = None) -> None:
    """Call `write(handle)` on a binary handle of a temp file, fsync it and rename it onto `path`."""
    with atomic_path(path, crash_at) as tmp, open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def remove_temp_files(folder: Path) -> None:
    """Temp files left by a killed writer (`.NAME.*.tmp`); only call while no live process writes there."""
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
