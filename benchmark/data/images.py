"""Decode any image file into RGB uint8 and resize it to the model's square input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

RESIZE_POLICIES = ("stretch", "letterbox", "via")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a 16-bit, float or other integer array to uint8 by its dtype's range."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        top = float(np.iinfo(array.dtype).max)
        if array.max(initial=0) <= 255:
            top = 255.0
        return np.clip(array.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    peak = float(np.nanmax(array)) if array.size else 1.0
    scale = 255.0 if peak <= 1.0 else 1.0
    return np.clip(np.nan_to_num(array.astype(np.float64)) * scale + 0.5, 0, 255).astype(np.uint8)


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image of any mode (grayscale, RGBA, palette, 16-bit TIFF) as an 8-bit RGB PIL image.

    Raises OSError/ValueError for unreadable, truncated or non-image files.
    """
    with Image.open(path) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGB",):
            return img.copy()
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        if img.mode in ("P", "L", "1", "CMYK", "YCbCr", "LAB", "HSV"):
            return img.convert("RGB")
        array = _to_uint8(np.asarray(img))
        if array.ndim == 3:
            array = array[..., :3] if array.shape[2] >= 3 else np.repeat(array[..., :1], 3, axis=2)
        else:
            array = np.stack([array] * 3, axis=-1)
        return Image.fromarray(np.ascontiguousarray(array), "RGB")


def resize_square(img: Image.Image, size: int, policy: str = "stretch", via: int | None = None) -> np.ndarray:
    """Resize to size x size RGB uint8 (HWC).

    stretch: plain bilinear resize (aspect ratio not kept; the reference script's behaviour).
    letterbox: keep aspect ratio and pad with black to a square, then resize.
    via: first down-sample every crop to via x via, then up to size: every class goes through the same
    low resolution, which removes the crop-size and resize-blur cue a CNN could otherwise learn.
    """
    if policy == "letterbox":
        side = max(img.size)
        canvas = Image.new("RGB", (side, side))
        canvas.paste(img, ((side - img.size[0]) // 2, (side - img.size[1]) // 2))
        img = canvas
    elif policy == "via":
        if not via:
            raise ValueError("resize policy 'via' needs a resolution")
        img = img.resize((via, via), Image.Resampling.BILINEAR, reducing_gap=None)
    elif policy != "stretch":
        raise ValueError(f"unknown resize policy {policy!r}; allowed: {', '.join(RESIZE_POLICIES)}")
    img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)
