"""Pixel primitives whose output bytes depend on nothing but their input: bicubic resampling, a JPEG-like
round trip and a PNG writer, in NumPy.

They use integer arithmetic and IEEE-754 operations that are correctly rounded on every CPU (+ - * / on arrays, in a
fixed order), so SIMD width, BLAS kernels and codec library versions cannot change a byte: no transcendental array
functions, no float matmul or float reductions, no zlib compression (the PNG data is stored, not deflated).
"""

from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path

import numpy as np

RESIZE_BITS = 16  # fixed-point fraction bits of the uint8 resize weights, per axis

# the orthonormal 8-point DCT-II matrix, D[k][n] = c(k) cos((2n+1) k pi / 16), times 4096 and rounded
_DCT = np.array(
    [[1448, 1448, 1448, 1448, 1448, 1448, 1448, 1448],
     [2009, 1703, 1138, 400, -400, -1138, -1703, -2009],
     [1892, 784, -784, -1892, -1892, -784, 784, 1892],
     [1703, -400, -2009, -1138, 1138, 2009, 400, -1703],
     [1448, -1448, -1448, 1448, 1448, -1448, -1448, 1448],
     [1138, -2009, 400, 1703, -1703, -400, 2009, -1138],
     [784, -1892, 1892, -784, -784, 1892, -1892, 784],
     [400, -1138, 1703, -2009, 2009, -1703, 1138, -400]],
    dtype=np.int64,
)
_DCT_SHIFT = 24  # D X D^T carries a factor 4096**2 = 2**24
# the example quantisation tables of the JPEG standard (Annex K), luminance and chrominance
_LUMA_Q = np.array(
    [[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
     [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
     [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]],
    dtype=np.int64,
)
_CHROMA_Q = np.full((8, 8), 99, dtype=np.int64)
_CHROMA_Q[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STORED_MAX = 65535  # bytes in one stored deflate block


def _keys(x: float) -> float:
    """Keys' cubic convolution kernel with a = -0.5 (Pillow's BICUBIC filter)."""
    x = abs(x)
    if x < 1.0:
        return (1.5 * x - 2.5) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5
    return 0.0


@functools.lru_cache(maxsize=1024)
def bicubic_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and normalised float64 weights, both (n_out, taps), of a bicubic resize along one axis.

    The geometry is Pillow's: output pixel i is centred at (i + 0.5) n_in / n_out, the kernel is widened by the
    scale when shrinking (antialiasing), and taps outside the input are dropped and the rest renormalised. Unused
    taps get weight 0 and a valid index. Plain Python floats, so the weights are the same everywhere.
    """
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    support = 2.0 * stretch
    rows: list[tuple[int, list[float]]] = []
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        weights = [_keys((x - centre + 0.5) / stretch) for x in range(lo, hi)]
        total = 0.0
        for w in weights:
            total += w
        rows.append((lo, [w / total for w in weights] if total != 0.0 else weights))
    taps = max(len(w) for _, w in rows)
    index = np.array([[min(lo + j, n_in - 1) for j in range(taps)] for lo, _ in rows], dtype=np.intp)
    weight = np.array([w + [0.0] * (taps - len(w)) for _, w in rows], dtype=np.float64)
    index.flags.writeable = weight.flags.writeable = False
    return index, weight


@functools.lru_cache(maxsize=1024)
def _fixed_taps(n_in: int, n_out: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """bicubic_taps as (index, int64 weight) per tap, weights in units of 2**-RESIZE_BITS summing to exactly
    2**RESIZE_BITS for every output pixel (the rounding residue goes to its largest tap)."""
    index, weight = bicubic_taps(n_in, n_out)
    fixed = np.floor(weight * (1 << RESIZE_BITS) + 0.5).astype(np.int64)
    fixed[np.arange(n_out), np.argmax(weight, axis=1)] += (1 << RESIZE_BITS) - fixed.sum(axis=1)  # integers: exact
    return tuple((np.ascontiguousarray(index[:, j]), np.ascontiguousarray(fixed[:, j])) for j in range(len(index[0])))


def resize_float(field: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of a 2-D float32 array to height x width, every tap added in a fixed order."""
    index, weight = bicubic_taps(field.shape[1], width)
    w = weight.astype(np.float32)
    rows = field[:, index[:, 0]] * w[:, 0]
    for j in range(1, index.shape[1]):
        rows = rows + field[:, index[:, j]] * w[:, j]
    index, weight = bicubic_taps(field.shape[0], height)
    w = weight.astype(np.float32)[:, :, None]
    out = rows[index[:, 0]] * w[:, 0]
    for j in range(1, index.shape[1]):
        out = out + rows[index[:, j]] * w[:, j]
    return out


def _taps(a: np.ndarray, taps: tuple[tuple[np.ndarray, np.ndarray], ...], axis: int) -> np.ndarray:
    """Sum over the taps of `a` gathered along `axis` times the integer weights (int64: exact in any order)."""
    shape = (-1,) + (1,) * (a.ndim - 1 - axis)
    out = np.take(a, taps[0][0], axis=axis) * taps[0][1].reshape(shape)
    for index, weight in taps[1:]:
        out += np.take(a, index, axis=axis) * weight.reshape(shape)
    return out


def resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of a uint8 H x W (x C) image in fixed point: int64 tap sums and one rounding shift at the end."""
    planes = image.reshape(image.shape[:2] + (-1,)).transpose(2, 0, 1).astype(np.int64)  # C x H x W
    shift = 0
    if image.shape[1] != width:
        planes = _taps(planes, _fixed_taps(image.shape[1], width), axis=2)
        shift += RESIZE_BITS
    if image.shape[0] != height:
        planes = _taps(planes, _fixed_taps(image.shape[0], height), axis=1)
        shift += RESIZE_BITS
    if shift:
        planes = (planes + (1 << (shift - 1))) >> shift
    out = np.minimum(np.maximum(planes, 0), 255).astype(np.uint8).transpose(1, 2, 0)
    return out.reshape((height, width) + image.shape[2:])


@functools.lru_cache(maxsize=128)
def quant_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The luminance and chrominance quantisation tables at a JPEG quality of 1..100, scaled like libjpeg's."""
    quality = min(max(int(quality), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    luma, chroma = (np.clip((q * scale + 50) // 100, 1, 255) for q in (_LUMA_Q, _CHROMA_Q))
    luma.flags.writeable = chroma.flags.writeable = False
    return luma, chroma


def _blocks(planes: np.ndarray) -> np.ndarray:
    """The 8x8 blocks of P x H x W planes (sides multiples of 8), as an (P * H/8 * W/8) x 8 x 8 array."""
    p, h, w = planes.shape
    return planes.reshape(p, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4).reshape(-1, 8, 8)


def _unblocks(blocks: np.ndarray, p: int, h: int, w: int) -> np.ndarray:
    """The inverse of _blocks."""
    return blocks.reshape(p, h // 8, w // 8, 8, 8).transpose(0, 1, 3, 2, 4).reshape(p, h, w)


def _dct_quantise(blocks: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Level shift, 2-D DCT, quantisation by `tables` (one per block), dequantisation and inverse DCT of int64
    8x8 blocks of 0..255 samples. The DCTs are int64 matmuls: exact (NumPy does not use BLAS for integers)."""
    coeffs = _DCT @ (blocks - 128) @ _DCT.T  # scaled by 2**_DCT_SHIFT, |coeffs| < 2**35
    levels = np.rint(coeffs / (tables * float(1 << _DCT_SHIFT))).astype(np.int64)  # one correctly rounded divide
    samples = (_DCT.T @ (levels * tables) @ _DCT + (1 << (_DCT_SHIFT - 1))) >> _DCT_SHIFT
    return np.minimum(np.maximum(samples + 128, 0), 255)


def _edge(a: np.ndarray, rows: np.ndarray, cols: np.ndarray, axes: tuple[int, int] = (1, 2)) -> np.ndarray:
    """`a` at these rows and columns (of its `axes`), indices clipped to the array: padding by edge replication."""
    a = a.take(np.clip(rows, 0, a.shape[axes[0]] - 1), axis=axes[0])
    return a.take(np.clip(cols, 0, a.shape[axes[1]] - 1), axis=axes[1])


def _upsample2(planes: np.ndarray) -> np.ndarray:
    """Double P x H x W int64 planes in both directions with libjpeg's "fancy" triangle filter (9, 3, 3, 1 / 16)."""
    p, h, w = planes.shape
    e = _edge(planes, np.arange(-1, h + 1), np.arange(-1, w + 1))
    rows = np.empty((p, 2 * h, w + 2), dtype=np.int64)
    rows[:, 0::2], rows[:, 1::2] = 3 * e[:, 1:-1] + e[:, :-2], 3 * e[:, 1:-1] + e[:, 2:]
    out = np.empty((p, 2 * h, 2 * w), dtype=np.int64)
    out[:, :, 0::2], out[:, :, 1::2] = 3 * rows[:, :, 1:-1] + rows[:, :, :-2], 3 * rows[:, :, 1:-1] + rows[:, :, 2:]
    return (out + 8) >> 4


def jpeg_like(image: np.ndarray, quality: int, subsample: bool = True) -> np.ndarray:
    """A JPEG round trip of a uint8 RGB image without a codec: integer YCbCr, optional 4:2:0 chroma, 8x8 DCT
    quantisation with the standard tables at `quality`; partial blocks are padded by edge replication."""
    h, w, _ = image.shape
    unit = 16 if subsample else 8
    rgb = _edge(image, np.arange(h - h % -unit), np.arange(w - w % -unit), axes=(0, 1))
    rgb = rgb.transpose(2, 0, 1).astype(np.int64)
    r, g, b = rgb
    y = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16  # libjpeg's fixed-point BT.601 coefficients
    chroma = np.stack([-11059 * r - 21709 * g + 32768 * b, 32768 * r - 27439 * g - 5329 * b])
    chroma = (chroma + ((128 << 16) + 32767)) >> 16
    if subsample:  # 2x2 means, rounded
        chroma = (chroma[:, 0::2, 0::2] + chroma[:, 0::2, 1::2] + chroma[:, 1::2, 0::2] + chroma[:, 1::2, 1::2] + 2) >> 2
    luma_q, chroma_q = quant_tables(quality)
    n_luma = y.size // 64
    tables = np.concatenate([np.broadcast_to(luma_q, (n_luma, 8, 8)),
                             np.broadcast_to(chroma_q, (chroma.size // 64, 8, 8))])
    blocks = _dct_quantise(np.concatenate([_blocks(y[None]), _blocks(chroma)]), tables)
    y = _unblocks(blocks[:n_luma], 1, *y.shape)[0]
    chroma = _unblocks(blocks[n_luma:], 2, *chroma.shape[1:]) - 128
    if subsample:
        chroma = _upsample2(chroma + 128) - 128
    cb, cr = chroma
    rgb = np.stack([y + ((91881 * cr + 32768) >> 16), y + ((-22554 * cb - 46802 * cr + 32768) >> 16),
                    y + ((116130 * cb + 32768) >> 16)], axis=-1)
    return np.minimum(np.maximum(rgb[:h, :w], 0), 255).astype(np.uint8)


def _chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit PNG of a uint8 H x W x 3 (RGB) or H x W (greyscale) array, its data in stored deflate blocks."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"png_bytes needs uint8 H x W or H x W x 3, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    rows = np.zeros((h, 1 + image[0].size), dtype=np.uint8)  # each row: filter type 0 (None), then its bytes
    rows[:, 1:] = image.reshape(h, -1)
    raw = rows.tobytes()
    blocks = []
    for start in range(0, max(len(raw), 1), _STORED_MAX):
        part = raw[start : start + _STORED_MAX]
        blocks.append(struct.pack("<BHH", start + _STORED_MAX >= len(raw), len(part), len(part) ^ 0xFFFF) + part)
    stream = b"\x78\x01" + b"".join(blocks) + struct.pack(">I", zlib.adler32(raw))  # zlib header, no compression
    header = struct.pack(">IIBBBBB", w, h, 8, 2 if image.ndim == 3 else 0, 0, 0, 0)
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def write_png(image: np.ndarray, path: Path) -> None:
    """Write `image` as a PNG file (see png_bytes)."""
    Path(path).write_bytes(png_bytes(image))
