"""Per-image paired analysis: a stratified bootstrap over the test images of each fold (every image is tested once
per seed by both the method and the baseline), for the difference in accuracy and macro-F1."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.report.columns import BLOCK_KEYS, PAIR_KEYS
from benchmark.report.selection import Rows
from benchmark.store import Store

REPLICATES = 2000
SEED = 0
METRICS = ("test_accuracy", "test_macro_f1")
CONDITIONS = (
    "The per-image bootstrap resamples the test images within each fold (stratified by class) and keeps the trained "
    "models fixed: it conditions on the training sets and seeds drawn, so its interval holds test-sample noise only. "
    "It says how sure we are about these trained models on images like these, not whether the method would win "
    "with another split, another seed or more data; the fold-level test and the verdicts answer that."
)


@dataclass(frozen=True)
class Block:
    """One (fold, repeat): true labels and, per matched seed, the method's and the baseline's predictions."""

    labels: np.ndarray  # (images,)
    method: np.ndarray  # (seeds, images)
    baseline: np.ndarray  # (seeds, images)


def _weights(labels: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap counts (replicates x images), each class's images resampled within the class."""
    weights = np.zeros((replicates, len(labels)))
    for c in np.unique(labels):
        index = np.flatnonzero(labels == c)
        n = len(index)
        draws = rng.integers(0, n, (replicates, n)) + n * np.arange(replicates)[:, None]
        weights[:, index] = np.bincount(draws.ravel(), minlength=replicates * n).reshape(replicates, n)
    return weights


def _accuracy(weights: np.ndarray, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """(replicates x seeds) accuracy of each run on each resample."""
    return weights @ (preds == labels).T.astype(np.float64) / len(labels)


def _macro_f1(weights: np.ndarray, labels: np.ndarray, preds: np.ndarray, classes: int) -> np.ndarray:
    """(replicates x seeds) macro-F1 over all classes (an empty class scores 0, as in benchmark.metrics)."""
    truth = np.eye(classes)[labels]  # images x classes
    true_n = weights @ truth  # replicates x classes
    out = np.empty((weights.shape[0], preds.shape[0]))
    for s, pred in enumerate(preds):
        guess = np.eye(classes)[pred]
        tp, pred_n = weights @ (guess * truth), weights @ guess
        denominator = pred_n + true_n
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        out[:, s] = f1.mean(axis=1)
    return out


def bootstrap(blocks: list[Block], classes: int, replicates: int = REPLICATES, seed: int = SEED) -> dict[str, np.ndarray]:
    """Per metric: the point difference (all images once) followed by `replicates` resampled differences, each the
    mean over blocks and seeds of (method - baseline), like the fold-level mean."""
    rng = np.random.default_rng(seed)
    scores = {m: [] for m in METRICS}
    for block in blocks:
        weights = np.vstack([np.ones((1, len(block.labels))), _weights(block.labels, replicates, rng)])
        for name, score in (("test_accuracy", _accuracy), ("test_macro_f1", _macro_f1)):
            extra = (classes,) if name == "test_macro_f1" else ()
            diff = score(weights, block.labels, block.method, *extra) - score(weights, block.labels, block.baseline, *extra)
            scores[name].append(diff)
    return {m: np.concatenate(v, axis=1).mean(axis=1) for m, v in scores.items()}


def _blocks(done: pd.DataFrame, row: str, baseline: str, read: Callable[[str], pd.DataFrame | None]) -> list[Block] | None:
    """The blocks of one comparison; None when a run has no predictions.csv or the two disagree on the images."""
    keys = PAIR_KEYS + ["run_id"]
    pairs = done[done["row"] == row][keys].merge(done[done["row"] == baseline][keys], on=PAIR_KEYS, suffixes=("", "_0"))
    out = []
    for _, runs in pairs.sort_values(PAIR_KEYS).groupby(BLOCK_KEYS, sort=True):
        labels, method, base = None, [], []
        for left, right in zip(runs["run_id"], runs["run_id_0"]):
            a, b = read(str(left)), read(str(right))
            if a is None or b is None:
                return None
            a, b = a.sort_values("file"), b.sort_values("file")
            same = list(a["file"]) == list(b["file"]) and np.array_equal(a["label"].to_numpy(), b["label"].to_numpy())
            if not same or (labels is not None and not np.array_equal(labels, a["label"].to_numpy(dtype=int))):
                return None
            labels = a["label"].to_numpy(dtype=int)
            method.append(a["pred"].to_numpy(dtype=int))
            base.append(b["pred"].to_numpy(dtype=int))
        out.append(Block(labels, np.array(method), np.array(base)))
    return out


def table(rows: Rows, backbones: list[str], output_dir: Path, classes: int) -> tuple[pd.DataFrame, str]:
    """Per backbone and method: the bootstrap difference and 95% percentile interval; a note where it is skipped."""
    if rows.baseline is None or classes < 2:
        return pd.DataFrame(), ""
    store, cache = Store(output_dir), {}

    def read(run_id: str) -> pd.DataFrame | None:
        if run_id not in cache:
            cache[run_id] = store.run(run_id).read_predictions()
        return cache[run_id]

    fair = rows.fair_frame()
    done = fair[fair["status"] == "done"]
    records, skipped = [], 0
    for backbone in backbones:
        sub = done[done["backbone"] == backbone]
        for row in [r for r in rows.fair.values() if r != rows.baseline]:
            blocks = _blocks(sub, row, rows.baseline, read)
            if not blocks:
                skipped += 1
                continue
            draws = bootstrap(blocks, classes)
            for metric, values in draws.items():
                low, high = np.percentile(values[1:], [2.5, 97.5])
                records.append({
                    "metric": metric, "backbone": backbone, "method": row, "baseline": rows.baseline,
                    "blocks": len(blocks), "runs_per_method": sum(len(b.method) for b in blocks),
                    "images": sum(len(b.labels) for b in blocks), "mean_diff": values[0], "ci_low": low,
                    "ci_high": high, "replicates": REPLICATES,
                })
    note = (f"Per-image analysis skipped for {skipped} comparison(s): runs without predictions.csv (older records) "
            "or with different test images." if skipped else "")
    return pd.DataFrame(records), note
