"""One pass over the files: bytes hash, format, size, colour, perceptual hash and the model-input statistics."""

from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from benchmark.audit.features import colour_stats, sharpness
from benchmark.data.folders import FileList
from benchmark.data.images import load_rgb, resize_square

PROGRESS_MIN_FILES = 200
COLOUR = ["mean_r", "mean_g", "mean_b", "contrast"]
COLUMNS = [
    "bytes", "sha256", "error", "format", "mode", "width", "height", "aspect", *COLOUR, "phash",
    "input_sharpness", *(f"input_{c}" for c in COLOUR),
]


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"unreadable ({type(exc).__name__}: {text})"


def inspect_file(path: Path, image_size: int, policy: str, via: int | None) -> dict:
    """Everything the audit needs from one file; `error` is set (and image fields left empty) when unreadable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return {"error": _reason(exc)}
    row: dict = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "error": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                row.update(format=img.format, mode=img.mode, width=img.size[0], height=img.size[1])
            rgb = load_rgb(path)
            model_input = resize_square(rgb, image_size, policy, via)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is reported as a bad file
        row["error"] = _reason(exc)
        return row
    row["aspect"] = row["width"] / row["height"]
    row.update(colour_stats(np.asarray(rgb)))
    row["phash"] = str(imagehash.phash(rgb))
    row["input_sharpness"] = sharpness(model_input)
    row.update({f"input_{k}": v for k, v in colour_stats(model_input).items()})
    return row


def inspect_files(files: FileList, image_size: int, policy: str, via: int | None) -> pd.DataFrame:
    """One row per file of `files`, in order (row i describes files.files[i])."""
    rows = []
    bar = tqdm(
        files.files, desc="audit: hashing and decoding", unit="img", file=sys.stderr, leave=False,
        disable=len(files.files) < PROGRESS_MIN_FILES,
    )
    for path in bar:
        rows.append(inspect_file(path, image_size, policy, via))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.insert(0, "file", files.relative())
    table.insert(1, "label", files.labels)
    table.insert(2, "class", [files.class_names[i] for i in files.labels])
    table.insert(3, "source", files.source_folders)
    table.insert(4, "extension", [p.suffix.lower() or "(none)" for p in files.files])
    table["readable"] = table["error"].isna()
    return table


def _spread(values: pd.Series) -> dict:
    if values.empty:
        return {"min": None, "median": None, "max": None}
    return {"min": float(values.min()), "median": float(values.median()), "max": float(values.max())}


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.value_counts().items()}


def summarize(table: pd.DataFrame, class_names: list[str], skipped: list[tuple[str, str]] = ()) -> dict:
    """Counts per class, imbalance, sizes, modes, formats, and the list of unreadable files."""
    classes = []
    for name in class_names:
        part = table[table["class"] == name]
        ok = part[part["readable"]]
        classes.append(
            {
                "name": name,
                "count": int(len(part)),
                "readable": int(len(ok)),
                "folders": _counts(part["source"]),
                "formats": _counts(ok["format"]),
                "extensions": _counts(part["extension"]),
                "modes": _counts(ok["mode"]),
                "width": _spread(ok["width"]),
                "height": _spread(ok["height"]),
                "aspect": _spread(ok["aspect"]),
            }
        )
    readable_counts = [c["readable"] for c in classes]
    bad = table[~table["readable"]]
    unreadable = [{"file": f, "class": c, "reason": r} for f, c, r in zip(bad["file"], bad["class"], bad["error"], strict=True)]
    unreadable += [{"file": f, "class": None, "reason": r} for f, r in skipped]
    return {
        "n_files": int(len(table)) + len(skipped),
        "n_readable": int(table["readable"].sum()),
        "classes": classes,
        "imbalance_ratio": (max(readable_counts) / min(readable_counts)) if min(readable_counts) > 0 else None,
        "unreadable": unreadable,
    }
