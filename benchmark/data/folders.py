"""Find the images of a dataset on disk and their labels (folder or split layout)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.data.digests import content_digests
from benchmark.errors import UserError, brief, did_you_mean, safe_name

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
    ignored: list[tuple[str, str]] = field(default_factory=list)
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
            ignored=self.ignored,
            _digests=None if self._digests is None else [self._digests[i] for i in idx],
        )


MAX_LISTED = 20


@dataclass
class _Listing:
    """A folder's visible entries: regular files, sub-folders, and what cannot be used (with the reason)."""

    files: list[Path] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    unusable: list[tuple[Path, str]] = field(default_factory=list)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(entry: os.DirEntry) -> str:
    """'file', 'folder', or why the entry cannot be used (links that dangle or loop, FIFOs, sockets, devices)."""
    try:
        mode = os.stat(entry.path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a link that loops"
        if exc.errno == errno.ENOENT:
            return "a link to nothing"
        return f"cannot be read: {exc.strerror}"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file" if _is_utf8(entry.name) else "name not valid UTF-8, rename it"
    return "a FIFO, socket or device, not a regular file"


def _list(folder: Path, where: str) -> _Listing:
    try:
        entries = sorted((e for e in os.scandir(folder) if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise UserError(f"{where}: cannot read folder {safe_name(folder)} ({exc.strerror})") from None
    listing = _Listing()
    for entry in entries:
        kind = _kind(entry)
        if kind == "file":
            listing.files.append(Path(entry.path))
        elif kind == "folder":
            listing.folders.append(entry.name)
        else:
            listing.unusable.append((Path(entry.path), kind))
    return listing


def _subfolders(folder: Path, where: str, ignored: list[tuple[Path, str]]) -> list[str]:
    """The sub-folders of `folder` (regular files beside them are not data)."""
    listing = _list(folder, where)
    ignored += listing.unusable
    return listing.folders


def _class_mapping(root: Path, classes: dict[str, list[str]] | None, where: str,
                   ignored: list[tuple[Path, str]]) -> dict[str, list[str]]:
    available = _subfolders(root, where, ignored)
    if classes is None:
        if not available:
            raise UserError(f"{where}: no class sub-folders in {safe_name(root)}; expected one folder per class")
        for name in available:
            if not _is_utf8(name):
                raise UserError(f"{where}: class folder name {safe_name(root / name)} is not valid UTF-8; rename it")
        if len(available) < 2:
            raise UserError(f"{where}: only one class folder ({safe_name(available[0])}) in {safe_name(root)}; "
                            "a classification task needs at least two (one folder per class)")
        return {name: [name] for name in available}
    for label, folders in classes.items():
        for folder in folders:
            if folder not in available:
                raise UserError(
                    f"{where}: data.classes.{safe_name(label)} names folder {brief(folder)}, which does not exist in "
                    f"{safe_name(root)}{did_you_mean(folder, available)}; available: {', '.join(available) or 'none'}"
                )
    return classes


def _same_folder_twice(root: Path, mapping: dict[str, list[str]], where: str) -> None:
    """Two class folders that are one folder on disk (a link): its images would be counted under both."""
    seen: dict[str, str] = {}
    for folders in mapping.values():
        for folder in folders:
            real = os.path.realpath(root / folder)
            if real in seen:
                raise UserError(f"{where}: class folders {safe_name(seen[real])} and {safe_name(folder)} in "
                                f"{safe_name(root)} are the same folder ({safe_name(real)}); keep one")
            seen[real] = folder


def _collect(root: Path, mapping: dict[str, list[str]], where: str,
             ignored: list[tuple[Path, str]]) -> tuple[list[Path], list[int], list[str]]:
    files, labels, sources = [], [], []
    _same_folder_twice(root, mapping, where)
    for label_index, (label, folders) in enumerate(mapping.items()):
        for folder in folders:
            listing = _list(root / folder, where)
            ignored += listing.unusable
            ignored += [(root / folder / name, "a sub-folder, not searched for images")
                        for name in listing.folders]
            if not listing.files:
                raise UserError(f"{where}: class folder {safe_name(root / folder)} (class {brief(label)}) is empty")
            files.extend(listing.files)
            labels.extend([label_index] * len(listing.files))
            sources.extend([folder] * len(listing.files))
    return files, labels, sources


def _is_empty(folder: Path, where: str) -> bool:
    listing = _list(folder, where)
    return not (listing.files or listing.folders or listing.unusable)


def _split_parts(root: Path, where: str, ignored: list[tuple[Path, str]]) -> dict[str, Path]:
    """train/, validation|valid|val/, test/: the non-empty one where several names exist (an empty one is ignored)."""
    present = _subfolders(root, where, ignored)
    parts: dict[str, Path] = {}
    for part, names in SPLIT_NAMES.items():
        found = [n for n in names if n in present]
        if not found:
            raise UserError(f"{where}: layout 'split' needs a {'/'.join(names)} folder in {safe_name(root)}; "
                            f"found: {', '.join(present) or 'none'}")
        filled = [n for n in found if not _is_empty(root / n, where)]
        if len(filled) > 1:
            raise UserError(f"{where}: layout 'split': {' and '.join(f'{n}/' for n in filled)} in {safe_name(root)} "
                            f"both hold files; which is the {part} part is ambiguous: keep one")
        parts[part] = root / (filled or found)[0]
    return parts


def _check_split_classes(parts: dict[str, Path], mapping: dict[str, list[str]], inferred: bool, where: str,
                         ignored: list[tuple[Path, str]]) -> None:
    """Every part holds every class folder; with classes taken from train/, no part holds a class train/ lacks."""
    wanted = [folder for folders in mapping.values() for folder in folders]
    for part, folder in parts.items():
        if part == "train":
            continue
        present = _subfolders(folder, where, ignored)
        missing = [name for name in wanted if name not in present]
        if missing:
            raise UserError(f"{where}: layout 'split': {safe_name(folder)} lacks the class folder(s) "
                            f"{', '.join(map(safe_name, missing))}; every part (train, validation, test) needs a "
                            "folder for every class")
        extra = [name for name in present if name not in wanted]
        if inferred and extra:
            raise UserError(f"{where}: layout 'split': {safe_name(folder)} has class folder(s) "
                            f"{', '.join(map(safe_name, extra))} that {parts['train'].name}/ lacks; add them to "
                            f"{parts['train'].name}/ or choose the classes with data.classes")


def _warn_ignored(ignored: list[tuple[Path, str]], where: str) -> None:
    if not ignored:
        return
    listed = "; ".join(f"{safe_name(path)} ({reason})" for path, reason in ignored[:MAX_LISTED])
    more = f" and {len(ignored) - MAX_LISTED} more" if len(ignored) > MAX_LISTED else ""
    print(f"warning: {where}: ignored {len(ignored)} item(s) that are not images to read: {listed}{more}",
          file=sys.stderr)


def scan(root: Path, layout: str = "folders", classes: dict[str, list[str]] | None = None, where: str = "data") -> FileList:
    """List the dataset's files. `where` names the config (file and key) in error messages.

    Links that dangle or loop, FIFOs and other special files, file names that are not UTF-8 and sub-folders inside a
    class folder are left out with one warning naming them (FileList.ignored).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{where}: data folder {safe_name(root)} does not exist")
    ignored: list[tuple[Path, str]] = []
    if layout == "folders":
        mapping = _class_mapping(root, classes, where, ignored)
        files, labels, sources = _collect(root, mapping, where, ignored)
        split = None
    elif layout == "split":
        parts = _split_parts(root, where, ignored)
        mapping = _class_mapping(parts["train"], classes, where, ignored)
        _check_split_classes(parts, mapping, classes is None, where, ignored)
        files, labels, sources, split = [], [], [], []
        for part, folder in parts.items():
            f, lab, src = _collect(folder, mapping, where, ignored)
            files += f
            labels += lab
            sources += src
            split += [part] * len(f)
    else:
        raise UserError(f"{where}: data.layout {brief(layout)} is not allowed; allowed: folders, split")
    if not files:
        raise UserError(f"{where}: no images found in {safe_name(root)}")
    _warn_ignored(ignored, where)
    return FileList(
        root=root,
        files=files,
        labels=np.asarray(labels, dtype=np.int64),
        class_names=list(mapping),
        source_folders=sources,
        split=split,
        ignored=[(str(path), reason) for path, reason in ignored],
    )
