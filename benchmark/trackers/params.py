"""What a tracker logs of a record: flat parameters, final metrics, tags, and per-epoch metric series."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

IDENTITY = ("run_id", "experiment", "method", "method_label", "backbone", "fold", "repeat", "seed")
EPOCH_SKIP = {"epoch", *IDENTITY}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'train': {'optimizer': {'lr': 1e-3}}} → {'train.optimizer.lr': 1e-3}; lists become JSON text."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= flatten(item, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: json.dumps(value) if isinstance(value, list) else value}


def run_params(record: dict) -> dict[str, str]:
    """Resolved config (the run's own, with a trial's overrides) and method parameters, as text; `record` is
    a `benchmark.record.RunRecord` (read through its flat keys)."""
    params = flatten(record.get("resolved_config") or {})
    params |= {f"method_params.{k}": v for k, v in (record.get("method_params") or {}).items()}
    return {key: str(value) for key, value in params.items()}


def final_metrics(record: dict) -> dict[str, float]:
    """The record's test_* and val_* numbers (finite ones) and its selected epoch."""
    out = {}
    for key, value in record.items():
        if (key.startswith(("test_", "val_")) or key in ("selected_epoch", "wall_time_s")) and _finite(value):
            out[key] = float(value)
    return out


def run_tags(record: dict) -> dict[str, str]:
    tags = {f"solderbench.{key}": str(record.get(key)) for key in IDENTITY if record.get(key) is not None}
    tags["solderbench.status"] = str(record.get("status"))
    if record.get("tune_trial") is not None:
        tags["solderbench.tune_trial"] = str(record["tune_trial"])
    return tags


def epoch_series(history: pd.DataFrame | None) -> list[tuple[str, int, float]]:
    """(metric, epoch, value) for every numeric column of the epoch history."""
    if history is None or history.empty or "epoch" not in history:
        return []
    out = []
    for column in history.columns:
        if column in EPOCH_SKIP or not pd.api.types.is_numeric_dtype(history[column]):
            continue
        for epoch, value in zip(history["epoch"], history[column]):
            if _finite(value):
                out.append((column, int(epoch), float(value)))
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
