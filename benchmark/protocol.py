"""The common evaluation protocol: folds computed once per experiment, shared by every run (paired)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from benchmark.atomic import atomic_write_text
from benchmark.data.folders import FileList
from benchmark.errors import UserError
from benchmark.experiment import Protocol


@dataclass(frozen=True)
class Fold:
    """Indices into the dataset's file list for one (repeat, fold)."""

    repeat: int
    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


ProtocolSpec = Protocol  # the experiment file's protocol section: its keys, defaults and bounds are defined once, there


DUPLICATES = "duplicates"


def groups_from_content(files: FileList) -> np.ndarray:
    """Group id per file: the hash of its bytes, so byte-identical copies never land in two parts of a fold."""
    return np.asarray(files.digests())


def groups_from_names(files: FileList, pattern: str) -> np.ndarray:
    """Group id per file: the first regex group matched in its file name (no match: the file is its own group).

    The special value `duplicates` groups byte-identical files instead (see groups_from_content).
    """
    if pattern == DUPLICATES:
        return groups_from_content(files)
    regex = re.compile(pattern)
    ids = []
    for path, folder in zip(files.files, files.source_folders):
        match = regex.search(path.name)
        ids.append(f"{folder}/{match.group(1)}" if match and match.groups() else f"file:{path}")
    return np.asarray(ids)


def _outer_splitter(spec: ProtocolSpec, seed: int, grouped: bool):
    if grouped:
        if spec.stratify:
            return StratifiedGroupKFold(n_splits=spec.folds, shuffle=True, random_state=seed)
        return GroupKFold(n_splits=spec.folds, shuffle=True, random_state=seed)
    if spec.stratify:
        return StratifiedKFold(n_splits=spec.folds, shuffle=True, random_state=seed)
    return KFold(n_splits=spec.folds, shuffle=True, random_state=seed)


def _carve_val(idx: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, spec: ProtocolSpec, seed: int):
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=spec.val_fraction, random_state=seed)
        tr, va = next(splitter.split(idx, labels[idx], groups[idx]))
        return idx[tr], idx[va]
    stratify = labels[idx] if spec.stratify else None
    tr, va = train_test_split(idx, test_size=spec.val_fraction, random_state=seed, stratify=stratify)
    return np.sort(tr), np.sort(va)


def _settings(spec: ProtocolSpec) -> str:
    grouped = f", protocol.group_by={spec.group_by!r}" if spec.group_by else ""
    return f"protocol.folds={spec.folds}, protocol.val_fraction={spec.val_fraction}{grouped}"


def _check_counts(files: FileList, spec: ProtocolSpec, groups: np.ndarray | None) -> None:
    """Before splitting: every class has images, enough for stratified folds; enough groups for the folds."""
    counts = np.bincount(files.labels, minlength=len(files.class_names))
    for name, count in zip(files.class_names, counts):
        if count == 0:
            raise UserError(f"class {name!r} has no readable image; add images or leave the class out (data.classes)")
        if spec.stratify and count < spec.folds:
            raise UserError(
                f"class {name!r} has {count} image(s), fewer than protocol.folds={spec.folds}; "
                "lower protocol.folds or add images"
            )
    if groups is not None and len(np.unique(groups)) < spec.folds:
        raise UserError(
            f"protocol.group_by {spec.group_by!r} makes {len(np.unique(groups))} group(s) of the {len(groups)} files, "
            f"fewer than protocol.folds={spec.folds}; lower protocol.folds or use a regex that tells more groups apart"
        )


def _cannot_split(spec: ProtocolSpec, repeat: int, fold: int | None, exc: ValueError) -> UserError:
    where = f"repeat {repeat}" + ("" if fold is None else f", fold {fold}")
    what = "the folds" if fold is None else "its validation part"
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UserError(f"{_settings(spec)}: cannot make {what} ({where}): {reason}; lower protocol.folds, change "
                     "protocol.val_fraction or add images")


def check_folds(files: FileList, folds: list[Fold], spec: ProtocolSpec) -> None:
    """Every part (train, validation, test) of every fold holds every class: otherwise a class is never learnt,
    never selected for, or never tested, and the numbers mean something else than they say."""
    n_classes = len(files.class_names)
    for fold in folds:
        for part in ("train", "val", "test"):
            present = np.bincount(files.labels[getattr(fold, part)], minlength=n_classes) > 0
            if present.all():
                continue
            name = files.class_names[int(np.flatnonzero(~present)[0])]
            part_name = {"train": "training", "val": "validation", "test": "test"}[part]
            if spec.kind == "fixed":
                raise UserError(f"data.layout split: the {part_name} part has no readable image of class {name!r}; "
                                "every part needs every class")
            raise UserError(
                f"{_settings(spec)}: repeat {fold.repeat}, fold {fold.fold} gets no {part_name} image of class "
                f"{name!r}; lower protocol.folds, raise protocol.val_fraction, "
                f"{'' if spec.stratify else 'turn on protocol.stratify, '}or add images"
            )


def make_folds(files: FileList, spec: ProtocolSpec) -> list[Fold]:
    """All (repeat, fold) splits of the experiment; disjoint train/val/test within each fold, each with every class."""
    labels = files.labels
    if spec.kind == "fixed":
        if files.split is None:
            raise UserError("protocol.kind 'fixed' needs data.layout: split (train/ validation/ test/ folders)")
        split = np.asarray(files.split)
        folds = [Fold(0, 0, *(np.flatnonzero(split == part) for part in ("train", "val", "test")))]
        check_folds(files, folds, spec)
        return folds
    if spec.kind != "kfold":
        raise UserError(f"protocol.kind {spec.kind!r} is not allowed; allowed: kfold, fixed")
    groups = groups_from_names(files, spec.group_by) if spec.group_by else None
    _check_counts(files, spec, groups)
    folds = []
    all_idx = np.arange(len(labels))
    for repeat in range(spec.repeats):
        seed = spec.seed + repeat
        splitter = _outer_splitter(spec, seed, groups is not None)
        try:
            outer = list(splitter.split(all_idx, labels, groups))
        except ValueError as exc:
            raise _cannot_split(spec, repeat, None, exc) from None
        for k, (train_val, test) in enumerate(outer):
            try:
                train, val = _carve_val(train_val, labels, groups, spec, seed * 1000 + k)
            except ValueError as exc:
                raise _cannot_split(spec, repeat, k, exc) from None
            folds.append(Fold(repeat, k, np.sort(train), np.sort(val), np.sort(test)))
    check_folds(files, folds, spec)
    return folds


def outer_folds(rows: np.ndarray, labels: np.ndarray, n_folds: int, seed: int) -> list[Fold]:
    """Stratified `n_folds`-fold over `rows` (labels aligned with them), with no validation part: the outer split of
    `make_folds` on its own (the audit's shortcut check on a folder without an experiment)."""
    splitter = _outer_splitter(ProtocolSpec(folds=n_folds, stratify=True), seed, grouped=False)
    empty = np.empty(0, dtype=np.int64)
    return [Fold(0, i, rows[train], empty, rows[test]) for i, (train, test) in enumerate(splitter.split(rows, labels))]


def sized_split(labels: np.ndarray, n_train: int, n_val: int, seed: int) -> Fold:
    """One stratified split into `n_train` training, `n_val` validation and the rest test images (`bench`);
    ValueError when a class cannot be on each side."""
    idx = np.arange(len(labels))
    train, rest = train_test_split(idx, train_size=n_train, stratify=labels, random_state=seed)
    val, test = train_test_split(rest, train_size=n_val, stratify=labels[rest], random_state=seed)
    return Fold(0, 0, np.sort(train), np.sort(val), np.sort(test))


def folds_fingerprint(files: FileList, folds: list[Fold]) -> str:
    digest = hashlib.sha256()
    names = files.relative()
    for fold in folds:
        for part in (fold.train, fold.val, fold.test):
            digest.update(("|".join(names[i] for i in part) + "\n").encode())
    return digest.hexdigest()[:16]


def save_folds(path: Path, files: FileList, folds: list[Fold]) -> str:
    """Write folds.json atomically (relative file names per part); return the folds fingerprint."""
    names = files.relative()
    fingerprint = folds_fingerprint(files, folds)
    payload = {
        "fingerprint": fingerprint,
        "dataset_fingerprint": files.fingerprint(),
        "folds": [
            {
                "repeat": f.repeat,
                "fold": f.fold,
                **{part: [names[i] for i in getattr(f, part)] for part in ("train", "val", "test")},
            }
            for f in folds
        ],
    }
    atomic_write_text(path, json.dumps(payload))
    return fingerprint
