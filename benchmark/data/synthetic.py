"""An embedded synthetic solder-joint dataset: rendered with NumPy + Pillow, deterministic, no downloads.

Each image is a top-down view of one solder joint (a chip-component end or an IC lead on its pad) and
its neighbours, lit like an AOI camera (bright flat solder, tinted slopes). The five classes differ only
in the solder/component geometry at the centre joint; every class goes through the same nuisance
variation (board colour, lighting, colour cast, rotation, scale, position, resolution loss, blur, sensor
noise, JPEG round-trip) and is written at the same size and format, so neither colour nor file format
gives the class away.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import io
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmark.errors import UserError
from benchmark.lifetime import die_with_parent

CLASSES: tuple[str, ...] = ("normal", "excessive_solder", "insufficient_solder", "shifted_component", "short")
REAL_DEFECT_COUNTS: dict[str, int] = {
    "excessive_solder": 92,
    "insufficient_solder": 148,
    "shifted_component": 114,
    "short": 300,
}
GENERATOR_VERSION = 2  # part of every image seed and of SYNTHETIC.json: bump it when the images change
MARKER = "SYNTHETIC.json"
CHUNK = 64  # images per task handed to a worker process
IMAGES_PER_WORKER = 256  # a worker process is started for at least this many images

_BOARDS = np.array(
    [(64, 108, 84), (44, 92, 62), (86, 120, 116), (40, 78, 58), (34, 62, 92), (150, 52, 40), (210, 92, 52),
     (78, 42, 42), (36, 36, 40), (110, 88, 62)],
    dtype=np.float32,
)
_BOARD_CUM = np.cumsum([0.2, 0.14, 0.14, 0.08, 0.08, 0.08, 0.06, 0.08, 0.08, 0.06])
_PADS = np.array([(150, 150, 146), (196, 156, 72), (180, 104, 70)], dtype=np.float32)
_PAD_CUM = np.cumsum([0.45, 0.3, 0.25])
_CHIP_BODIES = np.array([(30, 30, 32), (42, 38, 36), (176, 140, 104), (150, 112, 80), (196, 180, 160)],
                        dtype=np.float32)
_IC_BODIES = np.array([(30, 30, 32), (46, 46, 50), (60, 52, 46)], dtype=np.float32)
_SLOPE_TINTS = np.array([(240, 170, 190), (250, 200, 215), (170, 200, 235), (185, 185, 190), (225, 190, 160)],
                        dtype=np.float32)


class _Draws:
    """The scalar random numbers of one image, taken from one NumPy call (per-call overhead dominates here)."""

    def __init__(self, rng: np.random.Generator, n: int = 128):
        self._values = rng.random(n).tolist()
        self._next = 0

    def __call__(self, lo: float = 0.0, hi: float = 1.0) -> float:
        """One draw from U(lo, hi)."""
        value = self._values[self._next]
        self._next += 1
        return lo + (hi - lo) * value

    def sign(self) -> float:
        return 1.0 if self() < 0.5 else -1.0

    def index(self, n: int) -> int:
        return min(int(self() * n), n - 1)

    def weighted(self, cumulative: np.ndarray) -> int:
        return min(int(np.searchsorted(cumulative, self() * cumulative[-1], side="right")), len(cumulative) - 1)

    def colour(self, spread: float) -> np.ndarray:
        """Per-channel factors in [1 - spread, 1]."""
        return np.array([1.0 - spread * self() for _ in range(3)], dtype=np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] (np.clip's Python wrapper costs more than the arithmetic on these small arrays)."""
    return np.minimum(np.maximum(x, 0.0), 1.0)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Zero-mean smooth noise field (std about 1): a small random grid upsampled bicubically."""
    grid = rng.standard_normal((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC))


def _band(x: np.ndarray, lo: float, hi: float, px: float) -> np.ndarray:
    """Anti-aliased indicator of lo <= x <= hi (px: one pixel in the units of x)."""
    return _unit(np.minimum(x - lo, hi - x) * (1.0 / px) + 0.5)


def _rect(u: np.ndarray, abs_v: np.ndarray, u0: float, u1: float, half: float, px: float) -> np.ndarray:
    """Anti-aliased rectangle u0 <= u <= u1, |v| <= half (given |v|, shared by several rectangles)."""
    return _unit(np.minimum(np.minimum(u - u0, u1 - u), half - abs_v) * (1.0 / px) + 0.5)


@functools.lru_cache(maxsize=512)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in [-1, 1] along x and y (cached: the capture sizes repeat)."""
    ax = (np.arange(width, dtype=np.float32) + 0.5) * (2.0 / width) - 1.0
    ay = (np.arange(height, dtype=np.float32) + 0.5) * (2.0 / height) - 1.0
    gx, gy = np.meshgrid(ax, ay)
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def _rotate(u: np.ndarray, v: np.ndarray, angle: float, du: float, dv: float, pivot_u: float):
    """Coordinates in a frame rotated by `angle` about (pivot_u, 0) and moved by (du, dv)."""
    c, s = math.cos(angle), math.sin(angle)
    uu, vv = u - (pivot_u + du), v - dv
    return c * uu + s * vv + pivot_u, c * vv - s * uu


def _fillet(u: np.ndarray, v: np.ndarray, length: float, gamma: float, w_tip: float, w_toe: float) -> np.ndarray:
    """Unit-height meniscus fillet from a termination tip at u=0 down to the pad toe at u=length (flat for u < 0)."""
    t = _unit(u * (1.0 / length))
    q = v / (w_tip + (w_toe - w_tip) * t)
    q *= q
    lateral = np.sqrt(np.maximum(1.0 - q * q, 0.0))
    return (1.0 - t) ** gamma * lateral


def _slopes(f: np.ndarray, px: float) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient of a height field along image x and y, in scene units."""
    gx, gy = np.empty_like(f), np.empty_like(f)
    gx[:, 1:-1] = f[:, 2:] - f[:, :-2]
    gx[:, 0], gx[:, -1] = 2 * (f[:, 1] - f[:, 0]), 2 * (f[:, -1] - f[:, -2])
    gy[1:-1] = f[2:] - f[:-2]
    gy[0], gy[-1] = 2 * (f[1] - f[0]), 2 * (f[-1] - f[-2])
    return gx * (0.5 / px), gy * (0.5 / px)


def _geometry(d: _Draws, cls: str, sev: float, tex: np.ndarray) -> dict:
    """Scene geometry on a width x height pixel grid: anti-aliased layer masks and the solder height field.

    Scene units: the tip of the centre termination is at u=0, its pad runs along +u, joints repeat along v.
    """
    height, width = tex.shape
    ic = d() < 0.4
    angle = d.index(2) * math.pi + d(-0.12, 0.12)
    scale = d(1.1, 1.6) if ic else d(1.3, 2.0)
    gx, gy = _grid(width, height)
    ca, sa = math.cos(angle) / scale, math.sin(angle) / scale
    flip = d.sign()
    u = ca * gx + sa * gy + d(0.0, 0.35)
    v = (ca * gy - sa * gx) * flip + d(-0.15, 0.15)
    px = 2.0 / (min(width, height) * scale)

    if ic:
        pitch = d(0.5, 0.75)
        pad_half = pitch * d(0.24, 0.32)
        term_half = pad_half * d(0.5, 0.7)
        top = d(0.14, 0.24)
    else:
        pitch = d(1.0, 1.4)
        pad_half = pitch * d(0.28, 0.36)
        term_half = pad_half * d(0.8, 0.95)
        top = d(0.22, 0.34)
    term_len = d(0.25, 0.4)
    pad_u0, pad_u1 = -term_len - d(0.0, 0.15), d(0.45, 0.7)
    length = pad_u1 * d(0.88, 1.02)
    gamma = d(1.4, 2.6)
    wet = d(0.02, 0.08)
    w_toe = max(pad_half * d(0.92, 1.0), term_half)

    # every joint in its own frame (uc, vc); nk: which joint (0 = the centre one, which carries the defect)
    if cls == "shifted_component":
        c_dv = d.sign() * sev * pad_half * d(1.0, 1.8)
        c_angle = d.sign() * sev * d(0.1, 0.35)
        c_du = d(-0.12, 0.06) * sev
        v = v + c_dv * d(0.3, 0.8)  # the crop follows the component part of the way
    k = np.rint(v * (1.0 / pitch))
    nv = v - k * pitch
    uc, vc, nk = u, nv, k
    if cls == "shifted_component":
        cu, cv = _rotate(u, v, c_angle, c_du, c_dv, pivot_u=-term_len)
        if ic:  # one IC: all its leads move with it
            nk = np.rint(cv * (1.0 / pitch))
            uc, vc = cu, cv - nk * pitch
        else:  # separate chips: only the centre one moves; a pixel belongs to the nearer of it and a neighbour
            kn = np.where(k == 0, np.where(v < 0, -1.0, 1.0), k)
            vn = v - kn * pitch
            mine = np.abs(cv) < np.abs(vn)
            uc, vc, nk = np.where(mine, cu, u), np.where(mine, cv, vn), np.where(mine, 0.0, kn)
    centre = nk == 0

    # solder: the centre joint carries the defect, its neighbours are normal joints
    if cls == "insufficient_solder":
        c_len = length * (1.0 - 0.85 * sev * d(0.7, 1.0))
        c_gamma = gamma * (1.0 + 0.8 * sev)
        low = _fillet(uc, vc, c_len, c_gamma, term_half, w_toe) * (top * (1.0 - 0.9 * sev))
        if d() < 0.4:  # only part of the joint's width is wetted
            edge = 1.0 - 1.6 * sev * d(0.6, 1.0)
            low *= _unit((edge - d.sign() * vc * (1.0 / term_half)) * 4.0 + 0.5)
        fil = np.where(centre, low, _fillet(uc, vc, length, gamma, term_half, w_toe) * top)
    else:
        fil = _fillet(uc, vc, length, gamma, term_half, w_toe) * top
    a_pad = _rect(u, np.abs(nv), pad_u0, pad_u1, pad_half, px)
    if cls == "shifted_component":  # solder stays on the pads
        fil *= a_pad
    fil *= tex * d(0.05, 0.3) + 1.0
    # solder covers its termination only up to the wetting line (the blob and the bridge cover everything)
    cover = _unit((uc + wet) * (1.0 / px) + 0.5)
    if cls == "excessive_solder":
        mid = length * d(0.15, 0.4)
        du = (u - mid) * (1.0 / (length * (0.55 + 0.55 * sev) * d(0.9, 1.1)))
        dv = v * (1.0 / (w_toe * (1.0 + 0.6 * sev) * d(0.9, 1.1)))
        dome = np.sqrt(np.maximum(1.0 - du * du - dv * dv, 0.0)) * (top * (0.6 + 1.3 * sev))
        fil = np.maximum(fil, dome)
        cover = np.maximum(cover, _unit(dome * 50.0))
    if cls == "short":
        side = d.sign()
        mid = length * d(0.25, 0.7)
        wobble = np.sin(v * d(3.0, 9.0) + d(0.0, 6.3)) * d(-0.06, 0.06)
        across = (u - mid - wobble) * (1.0 / ((0.035 + 0.2 * sev) * d(0.8, 1.25)))
        bridge = np.sqrt(np.maximum(1.0 - across * across, 0.0)) * _band(v * side, 0.0, pitch, px)
        bridge *= top * d(0.6, 0.9) * (0.7 + 0.3 * sev)
        fil = np.maximum(fil, bridge)
        cover = np.maximum(cover, _unit(bridge * 50.0))

    body_u1 = -term_len
    abs_vc = np.abs(vc)
    if ic:  # the lead runs from under the body to its tip
        a_body = _band(uc, -9.0, body_u1 - d(0.15, 0.3), px)
        a_term = _rect(uc, abs_vc, body_u1 - 0.5, 0.0, term_half, px)
    else:
        a_body = _rect(uc, abs_vc, -9.0, body_u1, term_half * d(0.97, 1.03), px)
        a_term = _rect(uc, abs_vc, body_u1, 0.0, term_half, px)
    silk_u = d(-1.1, -0.8)
    return {
        "ic": ic, "px": px, "gx": gx, "gy": gy, "fil": fil, "cover": cover, "a_pad": a_pad, "a_term": a_term,
        "term_shade": 0.8 + 0.2 * _unit(uc * (-1.0 / term_len)),
        "a_body": a_body,
        "a_silk": _band(u, silk_u, silk_u + d(0.04, 0.08), px) if d() < 0.3 else None,
    }


def _paint(d: _Draws, g: dict, tex: np.ndarray) -> np.ndarray:
    """Colour the scene: layers composited top-down as (weight field, RGB) terms, float32 in 0..255."""
    height, width = tex.shape
    board = _BOARDS[d.weighted(_BOARD_CUM)] * d(0.4, 1.0)
    body = _IC_BODIES[d.index(len(_IC_BODIES))] if g["ic"] else _CHIP_BODIES[d.index(len(_CHIP_BODIES))]
    body = body * d(0.8, 1.15)
    pad = _PADS[d.weighted(_PAD_CUM)] * d(0.45, 0.75)
    term = d(180, 235) * d.colour(0.08)
    silk = np.full(3, d(170, 230), dtype=np.float32)

    # solder is a mirror lit by tiered ring lights: flat faces bright, slopes tinted, steep faces dark
    sx, sy = _slopes(g["fil"], g["px"])
    tier = np.minimum(np.sqrt(sx * sx + sy * sy) * (1.0 / d(0.8, 1.6)), 2.0)
    low, high = np.minimum(tier, 1.0), np.maximum(tier - 1.0, 0.0)
    flat = d(230, 255) * d.colour(0.1)
    tint = _SLOPE_TINTS[d.index(len(_SLOPE_TINTS))] * d(0.75, 1.05)
    steep = d(40, 110) * d.colour(0.2)
    light = d(0, 2 * math.pi)
    glint = np.minimum(np.maximum((sx * math.cos(light) + sy * math.sin(light)) * 0.3, -0.3), 0.3) + 0.06 * tex + 1.0
    a_sol = np.minimum(g["fil"] * (1.0 / 0.015), 1.0) * g["cover"]

    w_sol = a_sol * glint
    terms = [(w_sol * (1.0 - low), flat), (w_sol * (low - high), tint), (w_sol * high, steep)]
    rest = 1.0 - a_sol
    for alpha, mod, colour in (
        (g["a_body"], 1.0 + 0.06 * tex, body),
        (g["a_term"], g["term_shade"], term),
        (g["a_pad"], 1.0 + 0.08 * tex, pad),
        (g["a_silk"], 1.0, silk),
    ):
        if alpha is not None:
            terms.append((alpha * rest * mod, colour))
            rest = rest * (1.0 - alpha)
    terms.append((rest * (1.0 + 0.12 * tex), board))

    direction = d(0, 2 * math.pi)
    shading = (g["gx"] * math.cos(direction) + g["gy"] * math.sin(direction)) * d(0.0, 0.35) + 1.0
    gain = math.exp(d(-0.15, 0.6)) * (1.0 + 0.25 * (d.colour(1.0) - 0.5))
    weights = np.stack([w for w, _ in terms]).reshape(len(terms), -1) * shading.reshape(1, -1)
    colours = np.stack([c for _, c in terms]) * gain
    return (weights.T @ colours.astype(np.float32)).reshape(height, width, 3)


def _camera(d: _Draws, rng: np.random.Generator, img: np.ndarray, size: int) -> np.ndarray:
    """Sensor and optics at the capture resolution (saturation, noise, JPEG), then upsampling to size."""
    noise = rng.random(img.shape, dtype=np.float32) - 0.5
    img = noise * (img * np.float32(d(0.02, 0.12)) + np.float32(d(3.0, 10.0))) + img  # read + shot noise
    pil = Image.fromarray(np.minimum(np.maximum(img, 0.0), 255.0).astype(np.uint8), "RGB")
    if d() < 0.5:
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=int(d(30, 92)))
        pil = Image.open(buffer)
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(pil, dtype=np.uint8)


def _capture_size(d: _Draws, size: int) -> tuple[int, int]:
    """Most crops were captured at a lower (often anisotropic) resolution and upsampled, like the real ones."""
    if d() < 0.1:
        return size, size
    base = size * d(0.4, 0.9)
    return max(8, round(base * d(0.75, 1.3))), max(8, round(base * d(0.75, 1.3)))


def render(rng: np.random.Generator, cls: str, size: int, severity: float) -> np.ndarray:
    """Render one image of class `cls` as uint8 size x size x 3; severity in [0, 1] (ignored for normal)."""
    if cls not in CLASSES:
        raise UserError(f"unknown synthetic class {cls!r}; allowed: {', '.join(CLASSES)}")
    size = int(size)
    draws = _Draws(rng)
    width, height = _capture_size(draws, size)
    tex = _smooth_noise(rng, width, height, 5 + draws.index(9))
    geometry = _geometry(draws, cls, min(max(float(severity), 0.0), 1.0), tex)
    return _camera(draws, rng, _paint(draws, geometry, tex), size)


def class_counts(n: int, normal_fraction: float = 0.8, defect_weights: dict[str, float] | None = None) -> dict[str, int]:
    """Images per class: round(n * normal_fraction) normal, the rest split by the weights (largest remainder)."""
    _check_counts(n, normal_fraction)
    weights = dict(REAL_DEFECT_COUNTS if defect_weights is None else defect_weights)
    unknown = sorted(set(weights) - set(CLASSES[1:]))
    if unknown:
        raise UserError(f"defect_weights: unknown class(es) {', '.join(unknown)}; allowed: {', '.join(CLASSES[1:])}")
    try:
        w = np.array([float(weights.get(c, 0.0)) for c in CLASSES[1:]])
    except (TypeError, ValueError):
        raise UserError(f"defect_weights: weights must be numbers, got {weights}") from None
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise UserError(f"defect_weights: weights must be >= 0 with a positive sum, got {weights}")
    n_normal = min(max(int(round(n * normal_fraction)), 1), n - int(np.count_nonzero(w)))
    share = w / w.sum() * (n - n_normal)
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts), kind="stable")[: n - n_normal - counts.sum()]:
        counts[i] += 1
    return {"normal": n_normal, **{c: int(m) for c, m in zip(CLASSES[1:], counts, strict=True)}}


def _check_counts(n: int, normal_fraction: float) -> None:
    if int(n) != n or n < len(CLASSES):
        raise UserError(f"synthetic n={n} is not allowed; need an integer >= {len(CLASSES)} (one per class)")
    if not 0.0 < float(normal_fraction) < 1.0:
        raise UserError(f"synthetic normal_fraction={normal_fraction} is not allowed; need a value in (0, 1)")


def _image_rng(seed: int, cls: str, index: int) -> np.random.Generator:
    """Each image has its own stream, so an image does not depend on which others are generated."""
    return np.random.default_rng([int(seed), CLASSES.index(cls), int(index), GENERATOR_VERSION])


def _severity(rng: np.random.Generator, cls: str) -> float:
    """Defect severity ~ Beta(1.6, 1): mostly clear defects, about 8% below 0.2 where they are barely visible."""
    return 0.0 if cls == "normal" else float(rng.random() ** (1.0 / 1.6))


def _params(n: int, seed: int, size: int, normal_fraction: float, defect_weights: dict[str, float] | None) -> dict:
    if int(size) != size or size < 16:
        raise UserError(f"synthetic size={size} is not allowed; need an integer >= 16 pixels")
    if int(seed) != seed or seed < 0:
        raise UserError(f"synthetic seed={seed} is not allowed; need an integer >= 0")
    counts = class_counts(n, normal_fraction, defect_weights)
    return {
        "generator": "benchmark.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "n": int(n),
        "seed": int(seed),
        "size": int(size),
        "normal_fraction": float(normal_fraction),
        "defect_weights": {c: float(w) for c, w in (defect_weights or REAL_DEFECT_COUNTS).items()},
        "counts": counts,
        "format": "PNG, RGB, 8 bit",
    }


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array, "RGB").save(path, format="PNG", compress_level=0)


def _render_chunk(folder: Path, seed: int, size: int, jobs: list[tuple[str, int]]) -> int:
    """Render and save a list of (class, index) images; returns how many. Runs in a worker process or here."""
    for cls, i in jobs:
        rng = _image_rng(seed, cls, i)
        path = folder / cls / f"{cls}_{i}.png"
        try:
            _save_png(render(rng, cls, size, _severity(rng, cls)), path)
        except OSError as exc:  # a full disk fails a write(), which names no file
            exc.filename = exc.filename or str(path)
            raise
    return len(jobs)


def worker_count(n: int, workers: int | None = None) -> int:
    """Processes to render n images with: `workers` (default: the usable CPU cores), but one per
    IMAGES_PER_WORKER images at most, so that small sets do not pay for starting processes."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if int(workers) != workers or workers < 1:
        raise UserError(f"synthetic workers={workers} is not allowed; need an integer >= 1")
    return max(1, min(int(workers), n // IMAGES_PER_WORKER))


def _write_images(folder: Path, params: dict, progress: bool, n_workers: int) -> None:
    """Write every image under folder/<class>/, then the marker file.

    The images are rendered in chunks, spread over `n_workers` processes (each image has its own random stream,
    so the bytes do not depend on the number of workers or the order the chunks finish in). The workers die with
    this process, kill -9 included.
    """
    jobs = [(cls, i) for cls in CLASSES for i in range(params["counts"][cls])]
    for cls in CLASSES:
        if params["counts"][cls]:
            (folder / cls).mkdir(parents=True, exist_ok=True)
    chunks = [jobs[start : start + CHUNK] for start in range(0, len(jobs), CHUNK)]
    bar = tqdm(total=len(jobs), desc="synthetic images", unit="img", file=sys.stderr, disable=not progress)
    with bar:
        if n_workers == 1:
            for chunk in chunks:
                bar.update(_render_chunk(folder, params["seed"], params["size"], chunk))
        else:
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=context, initializer=die_with_parent,
                                     initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(_render_chunk, folder, params["seed"], params["size"], c) for c in chunks]
                try:
                    for future in as_completed(futures):
                        bar.update(future.result())
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    (folder / MARKER).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")


def _is_synthetic(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _replaceable(folder: Path) -> bool:
    """Whether a new synthetic dataset may take `folder`'s place: absent, an empty folder, or an older synthetic set."""
    return not folder.exists() or (folder.is_dir() and (_is_synthetic(folder) or not any(folder.iterdir())))


def _other_data(folder: Path, advice: str) -> UserError:
    return UserError(f"{folder} exists and is not a synthetic dataset (no {MARKER}); {advice}")


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A new folder beside `target` to write a dataset into, removed afterwards unless it was moved into place.

    It is flock'ed while in use (its worker processes inherit the lock), so staging folders of killed generators,
    which nobody holds, are told apart and removed first. It is made under another name and renamed once locked, so
    no other generator ever sees it unlocked.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    made = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    fd = os.open(made, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _lock_folder(fd)
        tmp = made.with_name(f".{target.name}.tmp-{made.name.rsplit('-', 1)[1]}")
        os.rename(made, tmp)
        os.chmod(tmp, 0o755)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(made, ignore_errors=True)
        os.close(fd)


def _lock_folder(fd: int, blocking: bool = True) -> bool:
    """flock an open folder: False when another process holds it or the file system has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def _remove_abandoned(target: Path) -> None:
    """Remove the staging folders beside `target` that no live process holds (a killed generator's)."""
    for folder in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            if _lock_folder(fd, blocking=False):
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)


def _install(tmp: Path, target: Path) -> None:
    """Move a finished dataset into place; an older synthetic dataset there is replaced, other data never (and the
    older one is put back when the new one cannot take its place)."""
    try:
        os.replace(tmp, target)
        return
    except OSError:
        if not (target.is_dir() and _replaceable(target)):
            raise _other_data(target, "move it away") from None
    with _staging(target) as trash:
        os.replace(target, trash / target.name)
        try:
            os.replace(tmp, target)
        except OSError:
            os.replace(trash / target.name, target)
            raise


def generate(
    out_dir: Path,
    n: int = 1000,
    seed: int = 0,
    size: int = 64,
    normal_fraction: float = 0.8,
    defect_weights: dict[str, float] | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> Path:
    """Write n images to out_dir/<class>/<class>_<i>.png plus SYNTHETIC.json, atomically; returns out_dir.
    `workers`: processes to render with (default: the usable CPU cores; see `worker_count`)."""
    out_dir = Path(out_dir)
    params = _params(n, seed, size, normal_fraction, defect_weights)
    n_workers = worker_count(params["n"], workers)
    if not _replaceable(out_dir):
        raise _other_data(out_dir, "choose a new folder")
    with _staging(out_dir) as tmp:
        _write_images(tmp, params, progress, n_workers)
        _install(tmp, out_dir)
    return out_dir


def cache_name(n: int, seed: int, size: int, normal_fraction: float = 0.8) -> str:
    """Folder name of a cached synthetic dataset."""
    return f"synthetic-n{int(n)}-s{int(seed)}-px{int(size)}-f{float(normal_fraction):g}"


def ensure_synthetic(cache_root: Path, n: int, seed: int, size: int, normal_fraction: float = 0.8) -> Path:
    """The cached dataset for these parameters, generated once; safe when two processes race for it."""
    params = _params(n, seed, size, normal_fraction, None)
    target = Path(cache_root) / cache_name(n, seed, size, normal_fraction)
    if _read_marker(target) == params:
        return target
    if not _replaceable(target):
        raise _other_data(target, "move it away")
    with _staging(target) as tmp:
        _write_images(tmp, params, progress=n >= 2000, n_workers=worker_count(params["n"]))
        try:
            os.replace(tmp, target)
        except OSError:
            if _read_marker(target) != params:
                _install(tmp, target)
    return target
