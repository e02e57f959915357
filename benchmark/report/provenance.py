"""Where the results came from: code version, library versions, data and fold fingerprints, run counts."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

import benchmark

REPORT_PACKAGES = ("pandas", "scipy", "statsmodels", "scikit-posthocs", "seaborn", "matplotlib")


def _counts(series: pd.Series) -> str:
    values = series.dropna().astype(str)
    values = values[values != ""]
    return ", ".join(f"{v} ({n})" if len(values.unique()) > 1 else v for v, n in values.value_counts().items()) or "—"


def _versions(results: pd.DataFrame) -> str:
    seen: dict[str, set[str]] = {}
    for text in results.get("versions", pd.Series(dtype=object)).dropna():
        try:
            found = json.loads(text) if isinstance(text, str) else dict(text)
        except (TypeError, json.JSONDecodeError):
            continue
        for package, value in found.items():
            seen.setdefault(package, set()).add(str(value))
    return ", ".join(f"{p} {' / '.join(sorted(v))}" for p, v in seen.items()) or "—"


def _json(value) -> dict:
    if isinstance(value, dict):
        return value
    try:
        found = json.loads(value) if isinstance(value, str) else {}
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def environment_of(row: pd.Series) -> str:
    """One run's numerical environment in words ('portable AVX2/MKL AVX2,STRICT, 1 thread; torch 2.14.1, ...'); runs
    recorded before environments were recorded: 'not recorded'."""
    env = _json(row.get("environment"))
    if not env:
        return "not recorded"
    versions = {k: v for k, v in _json(row.get("versions")).items() if k not in ("stack", "python")}
    kernels = (f"{env.get('numerics')} (ATen {env.get('aten_capability')}, oneDNN {env.get('onednn_isa')}, "
               f"MKL {env.get('mkl_branch')})")
    if env.get("numerics") == "native":
        kernels += f" on {env.get('cpu_isa')}"
    parts = [kernels, f"{env.get('threads')} thread(s)"]
    if env.get("gpu"):
        parts.append(f"{env['gpu']} (CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, driver {env.get('gpu_driver')})")
    return ", ".join(parts) + "; " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))


def environments(results: pd.DataFrame) -> pd.Series:
    """Runs per numerical environment (`environment_of`), most runs first."""
    if results.empty:
        return pd.Series(dtype=int)
    return results.apply(environment_of, axis=1).value_counts()


def mixed_environments(results: pd.DataFrame) -> str | None:
    """A warning when the runs of one report come from more than one numerical environment, else None."""
    found = environments(results[results["status"] == "done"] if "status" in results else results)
    if len(found) <= 1:
        return None
    listed = "; ".join(f"{n} runs: {env}" for env, n in found.items())
    return (f"Mixed environments: this report's runs come from {len(found)} numerical environments ({listed}). Runs "
            "from different environments differ in their last bits or more (native numerics differ by several points "
            "between CPU kinds); compare like with like, or re-train with `python -m benchmark verify`.")


def _installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def provenance(results: pd.DataFrame, output_dir: Path, n_expected: int) -> dict[str, str]:
    """Label -> value, in display order."""
    done = results["status"] == "done"
    dirty = results.get("git_dirty", pd.Series(dtype=object)).astype(str).str.lower().isin(["true", "1"])
    wall = pd.to_numeric(results.get("wall_time_s", pd.Series(dtype=float)), errors="coerce").sum()
    finished = results.get("finished_at", pd.Series(dtype=object)).dropna().astype(str)
    return {
        "Output folder": str(output_dir.resolve()),
        "Report generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "Runs": f"{len(results)} recorded: {int(done.sum())} done, {int((~done).sum())} failed",
        "Methods / settings / backbones": (
            f"{results['method'].nunique()} / {results['method_label'].nunique()} / {results['backbone'].nunique()}"
        ),
        "Runs per cell (planned)": str(n_expected),
        "Git commit": _counts(results.get("git_commit", pd.Series(dtype=object))) + (
            f"; {int(dirty.sum())} runs from a dirty tree" if dirty.any() else ""
        ),
        "Dataset fingerprint": _counts(results.get("dataset_fingerprint", pd.Series(dtype=object))),
        "Folds fingerprint": _counts(results.get("folds_fingerprint", pd.Series(dtype=object))),
        "Training versions": _versions(results),
        "Numerical environments": "; ".join(f"{env} ({n} runs)" for env, n in environments(results).items()) or "—",
        "CPUs": _counts(results.apply(lambda row: _json(row.get("environment")).get("cpu_model", ""), axis=1)
                        if not results.empty else pd.Series(dtype=object)),
        "Devices": _counts(results.get("device", pd.Series(dtype=object))),
        "Compute time": f"{wall / 3600:.2f} h total over all runs",
        "Finished": f"{finished.min()} … {finished.max()}" if len(finished) else "—",
        "Report versions": f"solderbench {benchmark.__version__}, "
        + ", ".join(f"{p} {_installed(p)}" for p in REPORT_PACKAGES),
    }
