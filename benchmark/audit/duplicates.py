"""Exact duplicates (same file bytes), near-duplicates (perceptual hash) and their leakage across fold parts."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from benchmark.audit.settings import NEAR_THRESHOLD
from benchmark.protocol import Fold

MAX_LISTED = 1000
MAX_EXAMPLES = 5
BLOCK_ELEMENTS = 1 << 22  # hash comparisons per block (bounds memory for large datasets)
_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 element (np.bitwise_count on NumPy >= 2, a byte lookup table before)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _POP8[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1)


def exact_groups(table: pd.DataFrame) -> list[list[int]]:
    """Row indices of files with identical bytes, one list per group of two or more."""
    hashed = table["sha256"].dropna()
    return [list(map(int, idx)) for idx in hashed.groupby(hashed).groups.values() if len(idx) > 1]


def near_pairs(table: pd.DataFrame, threshold: int = NEAR_THRESHOLD) -> pd.DataFrame:
    """Pairs (a < b) of readable files whose 64-bit perceptual hashes differ in at most `threshold` bits.

    Byte-identical pairs are left out (they are exact duplicates).
    """
    rows = table.index[table["phash"].notna()].to_numpy()
    codes = np.array([int(h, 16) for h in table.loc[rows, "phash"]], dtype=np.uint64)
    found_a, found_b, found_d = [], [], []
    block = max(1, BLOCK_ELEMENTS // max(len(codes), 1))
    for start in range(0, len(codes), block):
        dist = popcount64(np.ascontiguousarray(codes[start : start + block, None] ^ codes[None, :]))
        i, j = np.nonzero(dist <= threshold)
        i = i + start
        keep = j > i
        found_a.append(rows[i[keep]])
        found_b.append(rows[j[keep]])
        found_d.append(dist[i[keep] - start, j[keep]])
    pairs = pd.DataFrame(
        {
            "a": np.concatenate(found_a) if found_a else np.empty(0, int),
            "b": np.concatenate(found_b) if found_b else np.empty(0, int),
            "distance": np.concatenate(found_d).astype(int) if found_d else np.empty(0, int),
        }
    )
    sha = table["sha256"].to_numpy()
    return pairs[sha[pairs["a"]] != sha[pairs["b"]]].reset_index(drop=True)


def all_pairs(groups: list[list[int]], near: pd.DataFrame) -> pd.DataFrame:
    """Every duplicate pair: exact (all pairs inside each group, distance 0) and near."""
    exact = [(a, b) for group in groups for a, b in combinations(sorted(group), 2)]
    frame = pd.DataFrame(exact, columns=["a", "b"], dtype=int)
    frame["distance"] = 0
    frame["kind"] = "exact"
    near = near.assign(kind="near")
    return pd.concat([frame, near], ignore_index=True) if len(near) else frame


def _per_class(names: pd.Series, counts: dict[str, int] | None = None) -> dict[str, int]:
    out = dict(counts or {})
    for name, n in names.value_counts().items():
        out[str(name)] = out.get(str(name), 0) + int(n)
    return out


def duplicate_report(table: pd.DataFrame, threshold: int = NEAR_THRESHOLD) -> tuple[dict, pd.DataFrame]:
    """The duplicates section of the audit, and every duplicate pair (for the leakage check)."""
    cls = table["class"].to_numpy()
    files = table["file"].to_numpy()
    groups = exact_groups(table)
    listed_groups = [{"files": [files[i] for i in g], "classes": sorted({cls[i] for i in g})} for g in groups]
    listed_groups.sort(key=lambda g: len(g["classes"]) == 1)  # label conflicts first: never cut from the list
    within = [g for g in listed_groups if len(g["classes"]) == 1]
    redundant: dict[str, int] = {}
    for g in within:
        redundant[g["classes"][0]] = redundant.get(g["classes"][0], 0) + len(g["files"]) - 1
    near = near_pairs(table, threshold)
    same = cls[near["a"]] == cls[near["b"]]
    pairs = all_pairs(groups, near)
    touched = np.unique(pairs[["a", "b"]].to_numpy().ravel())
    near_list = [
        {"a": files[a], "b": files[b], "distance": int(d), "class_a": cls[a], "class_b": cls[b]}
        for a, b, d in near[["a", "b", "distance"]].itertuples(index=False)
    ]
    near_list.sort(key=lambda p: p["class_a"] == p["class_b"])  # label conflicts first
    report = {
        "exact": {
            "groups": len(groups),
            "files": int(sum(len(g) for g in groups)),
            "redundant_copies": int(sum(len(g) - 1 for g in groups)),
            "within_class_groups": len(within),
            "cross_class_groups": len(groups) - len(within),
            "redundant_per_class": redundant,
            "list": listed_groups[:MAX_LISTED],
        },
        "near": {
            "method": "imagehash.phash (64-bit DCT hash) on the decoded RGB image",
            "threshold": threshold,
            "pairs": int(len(near)),
            "within_class_pairs": int(same.sum()),
            "cross_class_pairs": int((~same).sum()),
            "pairs_per_class": _per_class(pd.Series(cls[near["a"][same]], dtype=object)),
            "list": near_list[:MAX_LISTED],
        },
        "files_with_duplicate_per_class": _per_class(pd.Series(cls[touched], dtype=object)),
    }
    return report, pairs


def _fold_leaks(pairs: pd.DataFrame, test: np.ndarray, seen: np.ndarray) -> pd.DataFrame:
    """Pairs with one file in `test` and the other in `seen`, oriented as (test file, seen file)."""
    a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    forward = test[a] & seen[b]
    backward = test[b] & seen[a]
    return pd.DataFrame(
        {
            "test": np.concatenate([a[forward], b[backward]]),
            "seen": np.concatenate([b[forward], a[backward]]),
            "kind": np.concatenate([pairs["kind"].to_numpy()[forward], pairs["kind"].to_numpy()[backward]]),
            "distance": np.concatenate([pairs["distance"].to_numpy()[forward], pairs["distance"].to_numpy()[backward]]),
        }
    )


def leakage_report(table: pd.DataFrame, pairs: pd.DataFrame, folds: list[Fold] | None) -> dict:
    """Per fold: test files with an exact or near duplicate in that fold's training part (train + validation)."""
    if not folds:
        return {"available": False}
    n = len(table)
    files = table["file"].to_numpy()
    labels = table["label"].to_numpy()
    rows = []
    for fold in folds:
        test = np.zeros(n, bool)
        test[fold.test] = True
        seen = np.zeros(n, bool)
        seen[np.concatenate([fold.train, fold.val])] = True
        train = np.zeros(n, bool)
        train[fold.train] = True
        val = np.zeros(n, bool)
        val[fold.val] = True
        leaks = _fold_leaks(pairs, test, seen)
        exact = set(leaks.loc[leaks["kind"] == "exact", "test"])
        near = set(leaks.loc[leaks["kind"] == "near", "test"]) - exact
        conflicting = set(leaks.loc[labels[leaks["test"]] != labels[leaks["seen"]], "test"])
        val_leaks = _fold_leaks(pairs, val, train)
        examples = leaks.drop_duplicates("test").head(MAX_EXAMPLES)
        rows.append(
            {
                "repeat": int(fold.repeat),
                "fold": int(fold.fold),
                "test": int(test.sum()),
                "leaked": len(exact | near),
                "leaked_exact": len(exact),
                "leaked_near": len(near),
                "leaked_fraction": len(exact | near) / max(int(test.sum()), 1),
                "label_conflicts": len(conflicting),
                "val_leaked": int(val_leaks["test"].nunique()),
                "examples": [
                    {"test": files[t], "train": files[s], "kind": k, "distance": int(d)}
                    for t, s, k, d in examples[["test", "seen", "kind", "distance"]].itertuples(index=False)
                ],
            }
        )
    fractions = [r["leaked_fraction"] for r in rows]
    return {
        "available": True,
        "folds": rows,
        "mean_leaked_fraction": float(np.mean(fractions)),
        "max_leaked_fraction": float(np.max(fractions)),
        "total_leaked": int(sum(r["leaked"] for r in rows)),
        "total_test": int(sum(r["test"] for r in rows)),
        "pooled_leaked_fraction": sum(r["leaked"] for r in rows) / max(sum(r["test"] for r in rows), 1),
    }
