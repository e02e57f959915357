"""One synthetic solder-joint image: the scene (geometry, lighting, colours) and the camera, drawn with NumPy.

Each image is a top-down view of one solder joint (a chip-component end or an IC lead on its pad) and
its neighbours, lit like an AOI camera (bright flat solder, tinted slopes). The five classes differ only
in the solder/component geometry at the centre joint; every class goes through the same nuisance
variation (board colour, lighting, colour cast, rotation, scale, position, resolution loss, blur, sensor
noise, JPEG-like round trip).

The pixels are the same bytes on every machine: besides NumPy's random streams, the arrays only meet IEEE-754
operations that are correctly rounded whatever the SIMD width (+ - * / sqrt, min, max, abs, floor, rint, where),
each in a fixed order; transcendental functions are evaluated on Python scalars only; resampling and the JPEG-like
step are `benchmark.data.pixels`' (no BLAS, no codec library).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from benchmark.data.pixels import jpeg_like, resize_float, resize_uint8
from benchmark.errors import UserError

CLASSES: tuple[str, ...] = ("normal", "excessive_solder", "insufficient_solder", "shifted_component", "short")

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
    return resize_float(rng.standard_normal((cells, cells), dtype=np.float32), height, width)


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
    """Unit-height meniscus fillet from a termination tip at u=0 down to the pad toe at u=length (flat for u < 0).

    Along u its profile is s^2 / (c + (1 - c) s) with s = 1 - u / length: a rational stand-in for s^gamma (equal
    at s = 0, 1/2 and 1, and for gamma = 2 everywhere), concave up, steeper at the tip as gamma grows.
    """
    c = math.pow(2.0, gamma - 1.0) - 1.0
    t = _unit(u * (1.0 / length))
    s = 1.0 - t
    q = v / (w_tip + (w_toe - w_tip) * t)
    q *= q
    lateral = np.sqrt(np.maximum(1.0 - q * q, 0.0))
    return s * s / (s * (1.0 - c) + c) * lateral


def _sine(x: np.ndarray) -> np.ndarray:
    """sin(x) to within 0.0011 from + - * and floor: a parabola per half period, sharpened towards the sine."""
    z = x * (1.0 / math.pi)
    z = z - 2.0 * np.floor(z * 0.5 + 0.5)  # in [-1, 1) half periods
    p = 4.0 * z * (1.0 - np.abs(z))
    return p * (0.775 + 0.225 * np.abs(p))


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
        wobble = _sine(v * d(3.0, 9.0) + d(0.0, 6.3)) * d(-0.06, 0.06)
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
    """Colour the scene: layers composited top-down as (weight field, RGB) terms; float32 0..255, 3 x H x W."""
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
    image = terms[0][0] * (terms[0][1] * gain)[:, None, None]
    for weight, colour in terms[1:]:  # one term after the other: a fixed order of correctly rounded operations
        image += weight * (colour * gain)[:, None, None]
    image *= shading
    return image


def _camera(d: _Draws, rng: np.random.Generator, img: np.ndarray, size: int) -> np.ndarray:
    """Sensor and optics at the capture resolution (saturation, noise, JPEG), then upsampling to size."""
    noise = rng.random(img.shape, dtype=np.float32) - 0.5
    img = noise * (img * np.float32(d(0.02, 0.12)) + np.float32(d(3.0, 10.0))) + img  # read + shot noise
    img = np.ascontiguousarray(np.minimum(np.maximum(img, 0.0), 255.0).astype(np.uint8).transpose(1, 2, 0))
    if d() < 0.5:
        img = jpeg_like(img, int(d(30, 92)))
    if img.shape[:2] != (size, size):
        img = resize_uint8(img, size, size)
    return img


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
