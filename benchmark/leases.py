"""Leases: one process trains a run at a time, and one process at a time holds an experiment folder's lock.

A lease file is held with an exclusive flock, which the kernel drops when its process dies (kill -9 included), so a
killed owner's lease is free at once. Where locks do not reach across hosts, a lease written by another host counts as
held while its heartbeat (the file's mtime) is fresh; on a file system without locks, a lease of this host counts as
held while its owner's process lives.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from benchmark.crash import crash_point

LEASE_STALE_S = 120.0


def lock(fd: int, blocking: bool) -> bool | None:
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


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) for the block."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        lock(fd, blocking=True)
        yield
    finally:
        os.close(fd)


def read_lease(fd: int) -> tuple[dict, float] | None:
    """The owner written in a lease file ({pid, host, time}) and its heartbeat's age in seconds; None if unreadable."""
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
        age = time.time() - os.fstat(fd).st_mtime
    except (ValueError, OSError):
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("host"), str) or type(owner.get("pid")) is not int:
        return None
    return owner, age


def owner_alive(owner: dict, age: float, kernel_lock: bool) -> bool:
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


def take(path: Path) -> int | None:
    """Take the lease in `path`: the open file descriptor that holds it, or None when another live process does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        kernel_lock = lock(fd, blocking=False)
        if kernel_lock is False:
            os.close(fd)
            return None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if not current:
            os.close(fd)
            continue
        lease = read_lease(fd)
        if lease is not None and owner_alive(*lease, kernel_lock=kernel_lock is True):
            os.close(fd)
            return None
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, me, 0)
        os.fsync(fd)
        return fd
    return None


def heartbeat(path: Path) -> None:
    """Refresh the lease's mtime (called after every epoch, also by remote workers)."""
    crash_point("heartbeat")
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


def owner(path: Path) -> dict | None:
    """Who holds the lease in `path` ({pid, host, time, heartbeat_age_s}), or None; only reads it (no lock is taken,
    so a `run` starting beside it is never turned away). Same host: while the owner's process lives; another host:
    while its heartbeat is fresh."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        lease = read_lease(fd)
    finally:
        os.close(fd)
    if lease is None or not owner_alive(*lease, kernel_lock=False):
        return None
    holder, age = lease
    return {**holder, "heartbeat_age_s": age}


def give_back(path: Path, fd: int) -> None:
    """Release a lease taken with `take`: remove its file, then drop the lock."""
    path.unlink(missing_ok=True)
    os.close(fd)
