"""Shortcut check: how well a trivial classifier predicts the label from metadata or input statistics."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from tqdm import tqdm

from benchmark.audit.inventory import COLOUR, PROGRESS_MIN_FILES
from benchmark.audit.settings import TREES
from benchmark.protocol import Fold

WARN_BALANCED = 0.9


@dataclass(frozen=True)
class FeatureSet:
    key: str
    title: str
    kind: str  # "metadata" (properties of the files) or "input" (statistics of what the model sees)
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    combines: tuple[str, ...] = ()  # the single sets this one is the union of (findings report those first)


FEATURE_SETS = (
    FeatureSet("format", "file format", "metadata", categorical=("format",)),
    FeatureSet("size", "image size (width, height, aspect ratio)", "metadata", numeric=("width", "height", "aspect")),
    FeatureSet("colour", "mean colour and contrast", "metadata", numeric=tuple(COLOUR)),
    FeatureSet(
        "metadata", "all metadata (format, mode, size, colour)", "metadata",
        numeric=("width", "height", "aspect", *COLOUR), categorical=("format", "mode"), combines=("format", "size", "colour"),
    ),
    FeatureSet("input_sharpness", "sharpness of the model's input (variance of the Laplacian)", "input", numeric=("input_sharpness",)),
    FeatureSet(
        "input", "model's input: sharpness, mean colour, contrast", "input",
        numeric=("input_sharpness", *(f"input_{c}" for c in COLOUR)), combines=("input_sharpness",),
    ),
)


@dataclass(frozen=True)
class Task:
    """A labelling of some readable files: the experiment's task, or the folders merged into one class."""

    key: str
    title: str
    rows: np.ndarray  # table row indices taking part
    labels: np.ndarray  # label per row in `rows`, 0..K-1
    class_names: list[str]
    positive: int | None  # for binary tasks: the class whose F1 is reported


def matrix(table: pd.DataFrame, feature_set: FeatureSet) -> np.ndarray:
    """Feature matrix for a set: numeric columns as they are, categorical ones one-hot."""
    parts = [table[list(feature_set.numeric)].to_numpy(dtype=np.float64)] if feature_set.numeric else []
    for column in feature_set.categorical:
        parts.append(pd.get_dummies(table[column].astype(str)).to_numpy(dtype=np.float64))
    return np.hstack(parts)


def _fold_parts(fold: Fold, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in `rows`) of the fold's training part (train + validation) and test part."""
    seen = np.isin(rows, np.concatenate([fold.train, fold.val]))
    test = np.isin(rows, fold.test)
    return np.flatnonzero(seen), np.flatnonzero(test)


def _scores(y: np.ndarray, pred: np.ndarray, k: int, positive: int | None) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {
            "accuracy": accuracy_score(y, pred),
            "balanced_accuracy": balanced_accuracy_score(y, pred),
            "macro_f1": f1_score(y, pred, labels=list(range(k)), average="macro", zero_division=0),
        }
        if positive is not None:
            out["f1"] = f1_score(y, pred, labels=[positive], average="macro", zero_division=0)
    return {key: float(value) for key, value in out.items()}


def per_class_f1(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """F1 of each class read as "this class or not" (NaN for a class absent from y)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = f1_score(y, pred, labels=list(range(k)), average=None, zero_division=0).astype(np.float64)
    scores[np.bincount(y, minlength=k) == 0] = np.nan
    return scores


def _mean(per_fold: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in per_fold[0]:
        values = np.array([f[key] for f in per_fold])
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def _set_result(feature_set: FeatureSet, per_fold: list[dict[str, float]], per_class: list[np.ndarray], names: list[str]) -> dict:
    row = {"key": feature_set.key, "title": feature_set.title, "kind": feature_set.kind, **_mean(per_fold)}
    if len(names) > 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            means = np.nanmean(np.vstack(per_class), axis=0)
        row["per_class_f1"] = {n: (None if np.isnan(m) else float(m)) for n, m in zip(names, means, strict=True)}
    return row


def evaluate_task(
    table: pd.DataFrame, task: Task, folds: list[Fold], seed: int = 0, trees: int = TREES, bar: tqdm | None = None
) -> dict:
    """Random-forest scores per feature set, averaged over the folds' test parts; plus the majority baseline."""
    sub = table.loc[task.rows]
    k = len(task.class_names)
    parts = [p for p in (_fold_parts(fold, task.rows) for fold in folds) if len(p[1]) and len(np.unique(task.labels[p[0]])) > 1]
    result = {
        "key": task.key,
        "title": task.title,
        "classes": task.class_names,
        "counts": np.bincount(task.labels, minlength=k).tolist(),
        "positive": None if task.positive is None else task.class_names[task.positive],
        "chance_balanced_accuracy": 1.0 / k,
        "folds_used": len(parts),
        "sets": [],
    }
    if not parts:
        return result
    baseline = []
    for seen, test in parts:
        dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(seen), 1)), task.labels[seen])
        baseline.append(_scores(task.labels[test], dummy.predict(np.zeros((len(test), 1))), k, task.positive))
    result["majority"] = _mean(baseline)
    for feature_set in FEATURE_SETS:
        x = matrix(sub, feature_set)
        per_fold, per_class = [], []
        for seen, test in parts:
            model = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1)
            model.fit(x[seen], task.labels[seen])
            pred = model.predict(x[test])
            per_fold.append(_scores(task.labels[test], pred, k, task.positive))
            per_class.append(per_class_f1(task.labels[test], pred, k))
            if bar is not None:
                bar.update()
        result["sets"].append(_set_result(feature_set, per_fold, per_class, task.class_names))
    return result


def tasks_for(table: pd.DataFrame, class_names: list[str], positive: str | None) -> list[Task]:
    """The experiment's task, plus one task per class made of several folders (tell those folders apart)."""
    ok = table[table["readable"]]
    rows = ok.index.to_numpy()
    k = len(class_names)
    pos = None
    if k == 2:
        pos = class_names.index(positive) if positive in class_names else 1
    title = " vs ".join(class_names) if k == 2 else f"the class among {k} ({', '.join(class_names)})"
    tasks = [Task("task", title, rows, ok["label"].to_numpy(), list(class_names), pos)]
    for name in class_names:
        part = ok[ok["class"] == name]
        folders = sorted(part["source"].unique())
        if len(folders) < 2:
            continue
        labels = part["source"].map({f: i for i, f in enumerate(folders)}).to_numpy()
        sub_pos = int(np.argmin(np.bincount(labels))) if len(folders) == 2 else None
        tasks.append(Task(f"within:{name}", f"the folder among the {len(folders)} merged into {name!r} ({', '.join(folders)})", part.index.to_numpy(), labels, folders, sub_pos))
    return tasks


def shortcut_report(
    table: pd.DataFrame, class_names: list[str], folds: list[Fold], positive: str | None = None, seed: int = 0,
    trees: int = TREES,
) -> dict:
    """Evaluate every task under the given folds."""
    tasks = tasks_for(table, class_names, positive)
    total = len(tasks) * len(folds) * len(FEATURE_SETS)
    quiet = len(table) < PROGRESS_MIN_FILES
    with tqdm(total=total, desc="audit: shortcut check", unit="fit", file=sys.stderr, leave=False, disable=quiet) as bar:
        evaluated = [evaluate_task(table, task, folds, seed, trees, bar) for task in tasks]
    return {
        "classifier": f"sklearn RandomForestClassifier(n_estimators={trees}, random_state={seed})",
        "protocol": "fit on each fold's train+validation part, scored on its test part; mean (and std) over folds",
        "warn_balanced_accuracy": WARN_BALANCED,
        "tasks": evaluated,
    }
