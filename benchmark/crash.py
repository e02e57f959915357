"""The fault-injection hook of the kill tests: `crash_point(WHERE)` SIGKILLs this process at the N-th WHERE."""

from __future__ import annotations

import os
import signal

CRASH_ENV = "SOLDERBENCH_CRASH_AT"
_crash_counts: dict[str, int] = {}


def crash_point(where: str) -> None:
    """With $SOLDERBENCH_CRASH_AT=WHERE:N, SIGKILL this process at the N-th WHERE; else nothing."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    target, _, count = spec.rpartition(":")
    if target != where:
        return
    _crash_counts[where] = _crash_counts.get(where, 0) + 1
    if _crash_counts[where] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
