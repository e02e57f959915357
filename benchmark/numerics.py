"""Numerics: which instruction set and how many threads the CPU kernels use, and what a record says about it.

`portable` (the default) caps every CPU kernel library torch uses at AVX2, the level every current x86-64 server
has: ATen's vectorized kernels (`ATEN_CPU_CAPABILITY`), oneDNN's convolutions (`ONEDNN_MAX_CPU_ISA`) and MKL's
BLAS through its conditional numerical reproducibility mode (`MKL_CBWR=AVX2,STRICT`), with a fixed thread count.
The same run then gives the same bits on an AVX2 machine and on an AVX-512 one (`python -m benchmark verify` checks
it). `native` uses whatever the machine has: faster on AVX-512, numbers comparable only with runs on the same kind
of CPU. docs/reproducibility.md says what each covers and costs.

The caps must be in place before torch runs its first kernel in a process: `prepare_environment` sets them for this
process and every process it starts; `enter` applies and checks them in the process that trains, and raises
`NotApplicable` where this process already ran kernels with other settings (the executor then trains in a fresh
worker process).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Literal

Mode = Literal["portable", "native"]
MODES: tuple[str, ...] = ("portable", "native")
PORTABLE_ISA = "AVX2"
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
PORTABLE_THREADS = 1  # the thread count of a portable run whose train.threads is unset

# Distributions whose version can change a number a run records (the rest are summarised by `stack_digest`).
NUMERIC_DISTRIBUTIONS = ("torch", "torchvision", "timm", "numpy", "pillow", "scipy", "scikit-learn", "optuna",
                         "pandas", "grad-cam")

# mkl_cbwr.h
_MKL_CBWR_BRANCH = 1
_MKL_CBWR_ALL = ~0
_MKL_BRANCHES = {0: "off", 1: "off", 2: "auto", 3: "compatible", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2",
                 9: "AVX", 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}
_MKL_AVX2 = 10
_MKL_STRICT = 0x10000
_MKL_MODE_CHANGE_FAILURE = -8


class NotApplicable(RuntimeError):
    """This process already ran CPU kernels with other settings; train in a fresh process instead."""


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if out:
                break  # the first processor is enough
            continue
        out.setdefault(key.strip(), value.strip())
    return out


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_isa() -> str:
    """The widest vector instruction set this CPU offers (x86: AVX512, AVX2, AVX, SSE4_2, ...)."""
    flags = set(_cpuinfo().get("flags", "").split())
    if not is_x86():
        return platform.machine() or "unknown"
    for isa, needs in (("AVX512", {"avx512f", "avx512bw", "avx512vl", "avx512dq"}), ("AVX2", {"avx2", "fma"}),
                       ("AVX", {"avx"}), ("SSE4_2", {"sse4_2"})):
        if needs <= flags:
            return isa
    return "SSE2" if flags else "unknown"


def portable_possible() -> str | None:
    """None when this CPU can run portable numerics, else why not (one clause)."""
    if not is_x86():
        return f"this CPU ({platform.machine() or 'unknown'}) is not x86-64"
    if cpu_isa() in ("AVX512", "AVX2"):
        return None
    return f"this CPU ({cpu_model()}) has no AVX2/FMA (widest: {cpu_isa()})"


def effective_threads(mode: str, threads: int | None) -> int | None:
    """Threads per run: portable fixes an unset count to PORTABLE_THREADS (sums split over threads differ)."""
    return threads if threads or mode != "portable" else PORTABLE_THREADS


def prepare_environment(mode: str, threads: int | None = None) -> None:
    """Set the caps for this process and the processes it starts (spawned workers, Ray workers): call it before the
    first torch kernel runs. Values the user set stay when they are the same caps; native sets nothing."""
    if mode != "portable" or portable_possible() is not None:
        return
    os.environ.update(PORTABLE_ENV)
    count = effective_threads(mode, threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(count)


def _mkl() -> ctypes.CDLL | None:
    import torch

    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        lib.mkl_serv_cbwr_get.argtypes = lib.mkl_serv_cbwr_set.argtypes = [ctypes.c_int]
        lib.mkl_serv_cbwr_get.restype = lib.mkl_serv_cbwr_set.restype = ctypes.c_int
        return lib
    except (OSError, AttributeError):
        return None  # not an MKL build (ARM, OpenBLAS): nothing to cap


def mkl_branch() -> str:
    """MKL's code branch in this process ('AVX2,STRICT', 'auto', ...; 'none' without MKL)."""
    lib = _mkl()
    if lib is None:
        return "none"
    value = lib.mkl_serv_cbwr_get(_MKL_CBWR_ALL)
    if value < 0:
        return "unknown"
    name = _MKL_BRANCHES.get(value & 0xFFFF, str(value & 0xFFFF))
    return name + (",STRICT" if value & _MKL_STRICT else "")


def enter(mode: str, threads: int | None, device_type: str = "cpu") -> dict:
    """Apply `mode` and the thread count in this process and return its state for the record.

    Raises NotApplicable when portable caps cannot take effect here because kernels already ran without them.
    Where the CPU cannot run portable numerics, warns once and runs native (the record says so).
    """
    import torch

    count = effective_threads(mode, threads)
    if count:
        torch.set_num_threads(count)
    if mode == "portable":
        reason = portable_possible()
        if reason is not None:
            _warn_once(f"warning: train.numerics: portable needs an x86-64 CPU with AVX2 and FMA; {reason}: these runs "
                       "use native numerics, and their numbers match only runs made on the same kind of CPU")
        else:
            prepare_environment(mode, threads)
            lib = _mkl()
            if lib is not None and mkl_branch() != "AVX2,STRICT":
                if lib.mkl_serv_cbwr_set(_MKL_AVX2 | _MKL_STRICT) != 0:
                    raise NotApplicable(f"MKL already runs branch {mkl_branch()}")
            if torch.backends.cpu.get_cpu_capability() != PORTABLE_ISA:
                raise NotApplicable(f"ATen already dispatches to {torch.backends.cpu.get_cpu_capability()}")
    return state(mode, device_type)


@functools.cache
def _warn_once(message: str) -> None:
    print(message, file=sys.stderr)


def effective_mode(mode: str) -> str:
    """What a run in `mode` really gets on this machine."""
    return mode if mode != "portable" or portable_possible() is None else "native"


def state(mode: str, device_type: str = "cpu") -> dict:
    """The numerics in effect in this process: what a record stores beside the library versions."""
    import torch

    out = {
        "numerics": effective_mode(mode),
        "threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "cpu_isa": cpu_isa(),
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_branch": mkl_branch(),
        "onednn_isa": _onednn_isa(),
    }
    if device_type == "cuda":
        out.update(_cuda_state())
    return out


def _onednn_isa() -> str:
    """The cap oneDNN reads when it starts ('native' without one; 'off' when torch does not use it)."""
    import torch

    if not (torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()):
        return "off"
    return os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "native"


def _cuda_state() -> dict:
    import torch

    return {
        "gpu": torch.cuda.get_device_name(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "gpu_driver": _nvidia_driver(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
    }


@functools.lru_cache(maxsize=1)
def _nvidia_driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Python and the versions of the distributions that can change a number, plus a digest of the whole stack."""
    out = {"python": platform.python_version()}
    for name in NUMERIC_DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    out["stack"] = stack_digest()
    return out


def stack_digest() -> str:
    """12 hex digits of SHA-256 over every installed distribution's name==version (sorted): equal stacks, equal
    digests."""
    import hashlib

    names = sorted({f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in metadata.distributions()})
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
