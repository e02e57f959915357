"""A real-vs-synthetic montage: per class, a row of real crops above a row of synthetic ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmark.atomic import atomic_write
from benchmark.data.images import load_rgb
from benchmark.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LABEL_WIDTH = 190
HEADER = 22
GAP = 6
RESAMPLE = Image.Resampling.BICUBIC


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def pick(folder: Path, k: int, rng: np.random.Generator) -> list[Path]:
    """Up to k images of a class folder, drawn without replacement (all of them if it has fewer)."""
    files = _images_in(folder) if folder.is_dir() else []
    if len(files) <= k:
        return files
    return [files[i] for i in sorted(rng.choice(len(files), size=k, replace=False))]


def build_montage(
    classes: tuple[str, ...] | list[str],
    synthetic_dir: Path,
    real_dir: Path | None = None,
    per_class: int = 8,
    tile: int = 64,
    seed: int = 0,
) -> Image.Image:
    """One row-pair per class (real row, then synthetic row), every tile resized to tile x tile (bicubic)."""
    if per_class < 1 or tile < 8:
        raise UserError(f"montage needs --per-class >= 1 and --tile >= 8, got {per_class} and {tile}")
    rng = np.random.default_rng(seed)
    sources = ([("real", real_dir)] if real_dir is not None else []) + [("synthetic", synthetic_dir)]
    rows = [(cls, kind, pick(root / cls, per_class, rng)) for cls in classes for kind, root in sources]
    width = LABEL_WIDTH + per_class * (tile + 2)
    height = HEADER + len(rows) * (tile + 2) + (len(classes) - 1) * GAP
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    title = f"real (top) vs synthetic (bottom) per class; tiles resized to {tile}x{tile} px, bicubic"
    if real_dir is None:
        title = f"synthetic only (no real data found); tiles {tile}x{tile} px, bicubic"
    draw.text((4, 3), title, fill="black", font=font)
    y = HEADER
    for row, (cls, kind, files) in enumerate(rows):
        if row and row % len(sources) == 0:
            y += GAP
        draw.text((4, y + tile // 2 - 16), cls, fill="black", font=font)
        draw.text((4, y + tile // 2 + 2), f"{kind} ({len(files)})" if files else f"{kind}: none", fill="gray",
                  font=font)
        for i, path in enumerate(files):
            sheet.paste(load_rgb(path).resize((tile, tile), RESAMPLE), (LABEL_WIDTH + i * (tile + 2), y))
        y += tile + 2
    return sheet


def save_png(image: Image.Image, out: Path) -> Path:
    """Write a PNG atomically (benchmark/atomic.py)."""
    out = Path(out)
    atomic_write(out, lambda handle: image.save(handle, format="PNG"))
    return out
