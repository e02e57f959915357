"""`run_audit`: every check of the data audit on one file list and its folds."""

from __future__ import annotations

import pandas as pd

from benchmark.audit.duplicates import NEAR_THRESHOLD, duplicate_report, leakage_report
from benchmark.audit.findings import findings
from benchmark.audit.inventory import inspect_files, summarize
from benchmark.audit.shortcuts import TREES, shortcut_report
from benchmark.data.folders import FileList
from benchmark.protocol import Fold, outer_folds

DEFAULT_FOLDS = 5
DEFAULT_SEED = 42


def default_folds(table: pd.DataFrame, n_folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED) -> list[Fold]:
    """Stratified k-fold over the readable files (k lowered to the smallest class; none if a class has < 2)."""
    ok = table[table["readable"]]
    counts = ok["label"].value_counts()
    k = min(n_folds, int(counts.min())) if len(counts) >= 2 else 0
    if k < 2:
        return []
    return outer_folds(ok.index.to_numpy(), ok["label"].to_numpy(), k, seed)


def run_audit(
    files: FileList,
    folds: list[Fold] | None,
    image_size: int = 84,
    resize_policy: str = "stretch",
    via: int | None = None,
    positive: str | None = None,
    group_by: str | None = None,
    fixed_split: bool = False,
    *,
    near_threshold: int = NEAR_THRESHOLD,
    trees: int = TREES,
    seed: int = 0,
) -> dict:
    """Audit a dataset: inventory, bad files, duplicates, fold leakage and shortcuts. Returns plain JSON-able data.

    `folds` index into `files` (the experiment's folds); None: leakage is not checked and the shortcut check
    uses a stratified 5-fold split. `positive` names the class whose F1 is reported for a two-class task; `group_by`
    is the folds' protocol.group_by and `fixed_split` whether they are a folder's own parts (the advice leaves
    out what is already on, and what does not apply).
    """
    table = inspect_files(files, image_size, resize_policy, via)
    duplicates, pairs = duplicate_report(table, near_threshold)
    shortcut_folds = list(folds) if folds else default_folds(table)
    result = {
        "dataset": {
            "root": str(files.root),
            "fingerprint": files.fingerprint(),
            "classes": list(files.class_names),
        },
        "settings": {
            "image_size": image_size,
            "resize_policy": resize_policy,
            "via": via,
            "positive": positive,
            "group_by": group_by,
            "fixed_split": fixed_split,
            "near_threshold": near_threshold,
            "folds": "experiment" if folds else f"stratified {len(shortcut_folds)}-fold, seed {DEFAULT_SEED}",
            "n_folds": len(shortcut_folds),
        },
        "inventory": summarize(table, files.class_names, files.skipped),
        "duplicates": duplicates,
        "leakage": leakage_report(table, pairs, folds),
        "shortcuts": shortcut_report(table, files.class_names, shortcut_folds, positive, seed, trees),
    }
    result["findings"] = findings(result)
    return result
