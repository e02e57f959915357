"""Executors: interchangeable ways to train a sweep's pending runs (`run.executor`: local | ray).

Each takes the same sweep and run list, claims runs through the store's leases and finishes each run with
`benchmark.execution`, so records, resume and `status` are the same whichever one ran them.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import torch

from benchmark.experiment import Experiment


class Executor(Protocol):
    def describe(self, pending: int) -> str:
        """Where the runs go, for the start line (e.g. 'cpu in 2 worker processes')."""

    def session(self) -> contextlib.AbstractContextManager:
        """Held while the sweep runs (e.g. connected to a Ray cluster)."""

    def run(self, sweep, todo: list, retry_failed: bool, show_progress: bool) -> dict:
        """Train `todo`; returns counts {done, failed, busy}."""


def make_executor(cfg: Experiment, device: torch.device | None) -> Executor:
    """The executor `run.executor` names (the local one trains on `device`)."""
    if cfg.run.executor == "ray":
        from benchmark.executors.ray import RayExecutor

        return RayExecutor(cfg)
    from benchmark.executors.local import LocalExecutor

    return LocalExecutor(cfg, device)
