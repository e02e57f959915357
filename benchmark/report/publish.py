"""Where a report goes: only into a new or empty folder or one a report made, and swapped into place so that the path
holds a complete report (the old or the new one) at every instant.

Every report folder carries MARKER, a list of the files the report wrote. A folder is replaced only when everything in
it is on that list; a folder without the marker (made by an older version) only when it has a report's index.html and
nothing but a report's files. The report is built in a hidden staging folder beside the target, flock'ed while its
process lives, and swapped with the old one in one atomic exchange (Linux renameat2, macOS renamex_np). Where the file
system has no exchange, the old folder is first renamed to `.NAME.previous`; a kill between the two renames leaves the
old report there, and the next `report` (or `recover`) puts it back.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmark.atomic import atomic_write_text
from benchmark.crash import crash_point
from benchmark.errors import UserError

MARKER = ".solderbench-report"
LEGACY_FILES = {"index.html", "results.csv", "epochs.csv", "selection.csv"}
LEGACY_FOLDERS = {"tables": (".md", ".tex", ".csv"), "stats": (".csv", ".md"), "figures": (".png", ".svg")}
LEGACY_SIGNATURE = "solderbench report"
SHOWN = 3
_AT_FDCWD, _RENAME_EXCHANGE, _RENAME_SWAP = -100, 2, 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def _entries(folder: Path) -> list[str]:
    """Every file, folder and link under `folder` as relative POSIX paths (links are not followed)."""
    out = []

    def unreadable(exc: OSError) -> None:
        raise exc

    for parent, folders, files in os.walk(folder, onerror=unreadable):
        rel = Path(parent).relative_to(folder)
        out += [(rel / name).as_posix() for name in folders + files]
    return sorted(out)


def _files(folder: Path) -> list[str]:
    return [e for e in _entries(folder) if (folder / e).is_file() and not (folder / e).is_symlink()]


def write_marker(folder: Path, source: Path | None = None) -> None:
    """Record the files of a finished report folder, and the output folder it reports, in its marker (call last,
    before publishing)."""
    listed = [f for f in _files(folder) if f != MARKER]
    made = {"made_by": "solderbench report", "files": listed} | ({"source": str(source.resolve())} if source else {})
    atomic_write_text(folder / MARKER, json.dumps(made, indent=1) + "\n")


def _source(folder: Path) -> str | None:
    """The output folder the report in `folder` was built from (None: not said, an older report)."""
    try:
        source = json.loads((folder / MARKER).read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    return source if isinstance(source, str) else None


def _marked(folder: Path) -> list[str] | None:
    """The files the marker lists, or None without a readable marker."""
    try:
        listed = json.loads((folder / MARKER).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return [str(f) for f in listed] if isinstance(listed, list) else None


def _legacy_report(folder: Path) -> bool:
    try:
        with open(folder / "index.html", encoding="utf-8", errors="replace") as handle:
            return LEGACY_SIGNATURE in handle.read(4096)
    except OSError:
        return False


def _legacy_allowed(folder: Path, entry: str) -> bool:
    """Whether `entry` is a file or folder an older report version writes."""
    parts = entry.split("/")
    path = folder / entry
    if path.is_symlink():
        return False
    if len(parts) == 1:
        return (parts[0] in LEGACY_FILES and path.is_file()) or (parts[0] in LEGACY_FOLDERS and path.is_dir())
    return len(parts) == 2 and parts[0] in LEGACY_FOLDERS and path.is_file() and path.suffix in LEGACY_FOLDERS[parts[0]]


def foreign_entries(folder: Path) -> list[str]:
    """What in an existing folder a report did not write (empty: the folder may be replaced)."""
    entries = _entries(folder)
    listed = _marked(folder)
    if listed is not None:
        allowed = {MARKER, *listed, *(p.as_posix() for f in listed for p in Path(f).parents if p != Path("."))}
        return [e for e in entries if e not in allowed]
    if entries and not _legacy_report(folder):
        return entries
    return [e for e in entries if not _legacy_allowed(folder, e)]


def _topmost(entries: list[str]) -> list[str]:
    """The entries not inside another listed entry (a foreign folder stands for its contents)."""
    listed = set(entries)
    return [e for e in entries if not any(p.as_posix() in listed for p in Path(e).parents)]


def check_replaceable(out_dir: Path, source: Path | None = None) -> None:
    """Raise UserError unless `out_dir` is absent, empty, or a report folder holding only the report's own files, built
    from `source` (a report of another output folder is not replaced)."""
    if out_dir.is_symlink():
        raise UserError(f"--out {out_dir}: is a symbolic link; give the folder it points to, or a new folder")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a folder")
    try:
        foreign = _topmost(foreign_entries(out_dir))
    except OSError as exc:
        raise UserError(f"--out {out_dir}: cannot read what the folder holds ({exc.strerror or exc})") from None
    if foreign:
        shown = ", ".join(foreign[:SHOWN]) + (f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else "")
        raise UserError(
            f"--out {out_dir}: the folder exists and holds files a report did not write ({shown}); a report replaces "
            "only a folder it made: give a new or empty folder"
        )
    made_from = _source(out_dir)
    if source is not None and made_from is not None and made_from != str(source.resolve()):
        raise UserError(f"--out {out_dir}: holds the report of another output folder, {made_from}; a report replaces "
                        f"only its own: give --out a new folder for the report of {source}, or delete that report first")


def _previous(out_dir: Path) -> Path:
    return out_dir.with_name(f".{out_dir.name}.previous")


def _staging_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.tmp-"


def _locked_by_a_live_process(folder: Path) -> bool:
    """True while the process that made this staging folder lives (or when locks cannot tell)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def recover(out_dir: Path) -> None:
    """Undo what a killed `report` left beside `out_dir`: put a moved-away report back, remove dead staging folders."""
    previous = _previous(out_dir)
    if previous.is_dir() and not previous.is_symlink() and not foreign_entries(previous):
        if out_dir.exists() or out_dir.is_symlink():
            shutil.rmtree(previous)
        else:
            os.rename(previous, out_dir)
    if not out_dir.parent.is_dir():
        return
    prefix = _staging_prefix(out_dir)
    for entry in out_dir.parent.iterdir():
        if entry.name.startswith(prefix) and entry.is_dir() and not entry.is_symlink():
            if not _locked_by_a_live_process(entry):
                shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A fresh hidden folder beside `out_dir` to build the report in, locked while this process lives; removed after."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_staging_prefix(out_dir), dir=out_dir.parent))
    except OSError as exc:
        raise UserError(f"--out {out_dir}: cannot create a folder in {out_dir.parent} ({exc.strerror or exc})") from None
    fd = os.open(tmp, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield tmp
    finally:
        os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the OS or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    if hasattr(libc, "renameat2"):
        libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        rc = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    elif hasattr(libc, "renamex_np"):
        libc.renamex_np.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        rc = libc.renamex_np(os.fsencode(a), os.fsencode(b), _RENAME_SWAP)
    else:
        return False
    if rc == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def publish(tmp: Path, out_dir: Path) -> None:
    """Put the finished report folder `tmp` at `out_dir`; an old report there is replaced in one atomic swap."""
    check_replaceable(out_dir)
    crash_point("publish")
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    if exchange(tmp, out_dir):
        crash_point("publish")
        shutil.rmtree(tmp)  # it holds the old report now
        return
    previous = _previous(out_dir)
    os.rename(out_dir, previous)
    crash_point("publish")
    os.rename(tmp, out_dir)
    crash_point("publish")
    shutil.rmtree(previous)
