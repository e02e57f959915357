"""Find an experiment's output folder and read its results, epochs and resolved config."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from benchmark.config import output_of
from benchmark.errors import UserError
from benchmark.record import IDENTITY
from benchmark.report.columns import METRICS, PAIR_KEYS
from benchmark.store import PLAN_FILE, Store, load_epochs, load_results

REQUIRED = list(IDENTITY)
METRIC_COLUMNS = [f"test_{m}" for m in METRICS if m != "loss"] + [f"val_{m}" for m in METRICS]


def resolve_output_dir(target: str | Path) -> Path:
    """An experiment file (its `run.output`, default runs/<name>) or an output folder."""
    output, experiment = output_of(target)
    if experiment is not None and not output.is_dir():
        raise UserError(f"{target}: its output folder {output} does not exist yet; run `python -m benchmark run {target}`")
    return output


def _load(output_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy results (typed, metric columns always present) and the per-epoch history."""
    results = load_results(output_dir)
    if (output_dir / PLAN_FILE).exists() and Store(output_dir).planned_ids() is None:
        print(f"warning: {output_dir}/{PLAN_FILE} cannot be read (damaged): every record in runs/ is reported, records "
              "of an earlier config included; run the experiment again to rewrite it", file=sys.stderr)
    if results.attrs.get("superseded"):
        print(f"note: {results.attrs['superseded']} older record(s) in {output_dir}/runs are superseded by the current "
              "config (plan.json) and left out of this report; they stay on disk", file=sys.stderr)
    if results.empty:
        raise UserError(f"{output_dir}: no finished runs yet (runs/*/record.json); nothing to report")
    missing = [c for c in REQUIRED if c not in results]
    if missing:
        raise UserError(f"{output_dir}: results lack the columns {', '.join(missing)} (see docs/results-schema.md)")
    added = [c for c in METRIC_COLUMNS if c not in results]
    results = results.reindex(columns=list(results.columns) + added)
    for column in METRIC_COLUMNS + ["n_train", "n_test", "n_val"]:
        if column in results:
            results[column] = pd.to_numeric(results[column], errors="coerce").astype("float64")
    for column in PAIR_KEYS:
        results[column] = pd.to_numeric(results[column], errors="coerce").astype("Int64")
    results["status"] = results["status"].fillna("failed").astype(str)
    for column in ("method", "method_label", "backbone"):
        results[column] = results[column].astype(str)
    results.attrs["added_columns"] = added
    return results, load_epochs(output_dir)


def read_config(output_dir: Path) -> tuple[dict, str]:
    """The resolved config (empty when absent or damaged) and its text."""
    path = output_dir / "config.resolved.yaml"
    if not path.is_file():
        return {}, ""
    text = path.read_text(errors="replace")
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        config = {}
    return (config if isinstance(config, dict) else {}), text


def check_consistent(results: pd.DataFrame, output_dir: Path) -> None:
    """Refuse to mix runs made on different data or different folds."""
    for column in ("dataset_fingerprint", "folds_fingerprint"):
        if column not in results:
            continue
        values = results[column].dropna().astype(str)
        values = values[values != ""]
        if values.nunique() > 1:
            counts = ", ".join(f"{v} ({n} runs)" for v, n in values.value_counts().items())
            raise UserError(
                f"{output_dir}: runs with different {column} values cannot be compared: {counts}; "
                "move the runs of one data/fold version to their own output folder"
            )


def expected_runs_per_cell(results: pd.DataFrame, config: dict) -> int:
    """Planned runs per (row, backbone): folds x repeats x seeds from the config, at least what was seen."""
    seen = results[PAIR_KEYS].drop_duplicates().shape[0]
    protocol = config.get("protocol") or {}
    seeds = config.get("seeds") or []
    if protocol.get("kind", "kfold") == "kfold" and protocol.get("folds") and seeds:
        return max(seen, int(protocol["folds"]) * int(protocol.get("repeats") or 1) * len(seeds))
    return seen


def backbone_order(results: pd.DataFrame, config: dict) -> list[str]:
    """Backbones in config order (planned but not yet run ones included), then any others seen."""
    planned = [b if isinstance(b, str) else b.get("name") for b in config.get("backbones") or []]
    seen = list(dict.fromkeys(results["backbone"]))
    return list(dict.fromkeys([b for b in planned if b] + seen))


def class_names(results: pd.DataFrame) -> list[str]:
    """Class names (index = label) from `task_classes`."""
    for value in results.get("task_classes", pd.Series(dtype=object)).dropna():
        try:
            names = json.loads(value) if isinstance(value, str) else list(value)
        except (TypeError, json.JSONDecodeError):
            continue
        if names:
            return [str(n) for n in names]
    return []
