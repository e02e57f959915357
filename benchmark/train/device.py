"""The training device: which one, deterministic kernels, host-to-device copies, mixed precision, torch.compile,
timing with the device's queued work finished."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"run.device {name!r} asked for, but CUDA is not available here; use auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RuntimeError(f"run.device {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA "
                           f"device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1}); use auto, cuda or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"run.device {name!r} asked for, but MPS (Apple GPU) is not available here; use auto or cpu")
    return device


def set_deterministic(enabled: bool) -> None:
    """On CUDA: deterministic cuDNN and cuBLAS kernels (an op without one warns), so that a run repeats exactly."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(enabled, warn_only=True)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU tensor to the device; on CUDA through pinned memory without blocking the host."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


class _StepMarked(torch.nn.Module):
    """A model compiled with CUDA graphs that marks a new step before each call, so that torch may reuse the
    previous call's output memory (callers copy what they keep: losses, probabilities, argmax counts)."""

    def __init__(self, compiled_model: torch.nn.Module):
        super().__init__()
        self.compiled_model = compiled_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return self.compiled_model(x)


def compiled(model: torch.nn.Module, mode: str, device: torch.device) -> torch.nn.Module:
    """torch.compile with static shapes (one graph per batch shape: training, the last batch, evaluation), in the
    given mode; on CUDA, reduce-overhead and max-autotune replay the steps as CUDA graphs."""
    out = torch.compile(model, dynamic=False, mode=None if mode == "default" else mode)
    return _StepMarked(out) if device.type == "cuda" and mode != "default" else out


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (for timing); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds `fn` takes, with the device's queued work finished before and after."""
    synchronize(device)
    tick = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - tick
