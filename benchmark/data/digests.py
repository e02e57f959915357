"""Content digests of data files (SHA-256 of the bytes), remembered by path, size, times and inode so a re-scan
stays fast."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from benchmark.errors import UserError, safe_name

CACHE_NAME = "digests.json"


def cache_root() -> Path:
    """Where derived data (synthetic sets, decoded images, digests) is kept: $SOLDERBENCH_CACHE or ~/.cache/solderbench."""
    root = Path(os.environ.get("SOLDERBENCH_CACHE", Path.home() / ".cache" / "solderbench"))
    if root.exists() and not root.is_dir():
        raise UserError(f"SOLDERBENCH_CACHE: {safe_name(root)} exists and is not a folder; point SOLDERBENCH_CACHE at a "
                        "folder (or unset it for ~/.cache/solderbench)")
    return root


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> list[int]:
    """Size, mtime, ctime and inode: any write (or a replacing rename) changes at least one; ctime cannot be set back."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _load(cache_file: Path) -> dict:
    try:
        loaded = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def content_digests(paths: list[Path], cache_file: Path | None = None) -> list[str]:
    """SHA-256 of each file's bytes; a file whose size, times and inode are unchanged reuses its remembered digest."""
    cache_file = cache_root() / CACHE_NAME if cache_file is None else cache_file
    known = _load(cache_file)
    out, changed = [], False
    for path in paths:
        key = os.fsdecode(os.path.abspath(path))
        stamp = _stamp(path)
        entry = known.get(key)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == stamp:
            out.append(entry[1])
            continue
        digest = file_digest(path)
        known[key] = [stamp, digest]
        out.append(digest)
        changed = True
    if changed:
        with contextlib.suppress(OSError):
            _save(cache_file, known)
    return out


def _save(cache_file: Path, known: dict) -> None:
    from benchmark.atomic import atomic_write_text

    atomic_write_text(cache_file, json.dumps(known, separators=(",", ":")))
