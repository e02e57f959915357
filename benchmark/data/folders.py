"""Find the images of a dataset on disk and their labels (folder or split layout)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.data.digests import content_digests
from benchmark.errors import UserError, did_you_mean

SPLIT_NAMES = {"train": ("train",), "val": ("validation", "valid", "val"), "test": ("test",)}


@dataclass
class FileList:
    """The files of a dataset with integer labels; `split` is set only for the split layout."""

    root: Path
    files: list[Path]
    labels: np.ndarray
    class_names: list[str]
    source_folders: list[str]
    split: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _digests: list[str] | None = field(default=None, repr=False, compare=False)

    def relative(self) -> list[str]:
        return [f.relative_to(self.root).as_posix() for f in self.files]

    def digests(self) -> list[str]:
        """SHA-256 of each file's bytes (computed once per list, remembered across scans by size and times)."""
        if self._digests is None:
            self._digests = content_digests(self.files)
        return self._digests

    def fingerprint(self) -> str:
        """Hash of relative paths, file contents and labels: changes when any image on disk changes."""
        digest = hashlib.sha256()
        for rel, content, label in zip(self.relative(), self.digests(), self.labels):
            digest.update(f"{rel}\0{content}\0{self.class_names[label]}\n".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()[:16]

    def subset(self, keep: np.ndarray) -> FileList:
        idx = np.flatnonzero(keep)
        return FileList(
            root=self.root,
            files=[self.files[i] for i in idx],
            labels=self.labels[idx],
            class_names=self.class_names,
            source_folders=[self.source_folders[i] for i in idx],
            split=None if self.split is None else [self.split[i] for i in idx],
            skipped=self.skipped,
            _digests=None if self._digests is None else [self._digests[i] for i in idx],
        )


def _list_files(folder: Path) -> list[Path]:
    return sorted(
        (Path(entry.path) for entry in os.scandir(folder) if entry.is_file() and not entry.name.startswith(".")),
        key=lambda p: p.name,
    )


def _subfolders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _class_mapping(root: Path, classes: dict[str, list[str]] | None, where: str) -> dict[str, list[str]]:
    available = _subfolders(root)
    if classes is None:
        if not available:
            raise UserError(f"{where}: no class sub-folders in {root}; expected one folder per class")
        return {name: [name] for name in available}
    for label, folders in classes.items():
        for folder in folders:
            if folder not in available:
                raise UserError(
                    f"{where}: data.classes.{label} names folder {folder!r}, which does not exist in {root}"
                    f"{did_you_mean(folder, available)}; available: {', '.join(available) or 'none'}"
                )
    return classes


def _collect(root: Path, mapping: dict[str, list[str]], where: str) -> tuple[list[Path], list[int], list[str]]:
    files, labels, sources = [], [], []
    for label_index, (label, folders) in enumerate(mapping.items()):
        for folder in folders:
            found = _list_files(root / folder)
            if not found:
                raise UserError(f"{where}: class folder {root / folder} (class {label!r}) is empty")
            files.extend(found)
            labels.extend([label_index] * len(found))
            sources.extend([folder] * len(found))
    return files, labels, sources


def scan(root: Path, layout: str = "folders", classes: dict[str, list[str]] | None = None, where: str = "data") -> FileList:
    """List the dataset's files. `where` names the config (file and key) in error messages."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{where}: data folder {root} does not exist")
    if layout == "folders":
        mapping = _class_mapping(root, classes, where)
        files, labels, sources = _collect(root, mapping, where)
        split = None
    elif layout == "split":
        present = _subfolders(root)
        parts: dict[str, Path] = {}
        for part, names in SPLIT_NAMES.items():
            match = next((n for n in names if n in present), None)
            if match is None:
                raise UserError(
                    f"{where}: layout 'split' needs a {'/'.join(names)} folder in {root}; found: {', '.join(present) or 'none'}"
                )
            parts[part] = root / match
        mapping = _class_mapping(parts["train"], classes, where)
        files, labels, sources, split = [], [], [], []
        for part, folder in parts.items():
            f, lab, src = _collect(folder, mapping, where)
            files += f
            labels += lab
            sources += src
            split += [part] * len(f)
    else:
        raise UserError(f"{where}: data.layout {layout!r} is not allowed; allowed: folders, split")
    if not files:
        raise UserError(f"{where}: no images found in {root}")
    return FileList(
        root=root,
        files=files,
        labels=np.asarray(labels, dtype=np.int64),
        class_names=list(mapping),
        source_folders=sources,
        split=split,
    )
