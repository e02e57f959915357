"""The deterministic pixel primitives (benchmark.data.pixels) against independent computations, and the scene's
algebraic stand-ins for the transcendental functions it no longer calls on arrays."""

from __future__ import annotations

import io
import math
import zlib

import numpy as np
import pytest
from PIL import Image

from benchmark.data import pixels, scene
from benchmark.data.synthetic import generate


def _keys(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel (a = -0.5) written out as polynomials, in float64."""
    d = np.abs(x)
    return np.where(d < 1, 1.5 * d**3 - 2.5 * d**2 + 1, np.where(d < 2, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2, 0.0))


def _weights(n_in: int, n_out: int) -> np.ndarray:
    """Dense float64 n_out x n_in bicubic weights: kernel widened when shrinking, rows renormalised at the edges."""
    scale = n_in / n_out
    centres = (np.arange(n_out) + 0.5) * scale
    k = _keys(((np.arange(n_in) + 0.5)[None, :] - centres[:, None]) / max(scale, 1.0))
    return k / k.sum(axis=1, keepdims=True)


def _reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize in float64 with dense matrices, per channel."""
    wy, wx = _weights(image.shape[0], height), _weights(image.shape[1], width)
    return np.stack([wy @ image[..., c].astype(np.float64) @ wx.T for c in range(image.shape[2])], axis=-1)


@pytest.mark.parametrize("shape", [(1, 1, 3), (37, 45, 3), (200, 120, 3), (13, 21)])
def test_png_round_trips_through_pillow_and_zlib(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = pixels.png_bytes(image)
    with Image.open(io.BytesIO(data)) as img:
        img.verify()  # chunk CRCs
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == ("RGB" if len(shape) == 3 else "L")
        assert np.array_equal(np.asarray(img), image)
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")
    rows = zlib.decompress(data[idat + 4 : idat + 4 + length])  # stored blocks and the Adler-32 check
    assert rows == np.concatenate([np.zeros((shape[0], 1), np.uint8), image.reshape(shape[0], -1)], axis=1).tobytes()
    assert len(data) == 8 + 25 + 12 + 2 + 5 * -(-len(rows) // 65535) + len(rows) + 4 + 12  # no compression at all


def test_png_rejects_what_it_cannot_write():
    for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8), np.zeros(4, np.uint8)):
        with pytest.raises(ValueError):
            pixels.png_bytes(bad)


@pytest.mark.parametrize(("source", "target"), [((30, 41), (64, 64)), ((70, 75), (64, 64)), ((50, 64), (64, 64)),
                                                ((9, 64), (64, 20)), ((8, 8), (33, 17))])
def test_uint8_resize_is_within_rounding_of_a_float64_bicubic(source, target):
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (*source, 3), dtype=np.uint8)
    smooth = np.clip(_reference(noise[:4, :4], *source) * 1.3 - 40, 0, 255).astype(np.uint8)
    for image in (noise, smooth):
        out = pixels.resize_uint8(image, *target)
        assert out.dtype == np.uint8 and out.shape == (*target, 3)
        error = np.abs(out - np.clip(_reference(image, *target), 0, 255))
        assert error.max() <= 0.6  # one rounding at the end (0.5) plus 16-bit weights; the brief allows 1


def test_uint8_resize_keeps_a_flat_image_flat_and_an_unresized_one_unchanged():
    for value in (0, 1, 128, 254, 255):
        flat = np.full((13, 9, 3), value, dtype=np.uint8)
        assert np.all(pixels.resize_uint8(flat, 40, 27) == value)
        assert np.all(pixels.resize_uint8(flat, 5, 4) == value)
    image = np.random.default_rng(2).integers(0, 256, (11, 7, 3), dtype=np.uint8)
    assert np.array_equal(pixels.resize_uint8(image, 11, 7), image)
    assert np.array_equal(pixels.resize_uint8(image[..., 0], 30, 20), pixels.resize_uint8(image, 30, 20)[..., 0])


def test_float_resize_matches_a_float64_bicubic():
    field = np.random.default_rng(3).standard_normal((7, 9), dtype=np.float32)
    out = pixels.resize_float(field, 40, 33)
    assert out.dtype == np.float32 and out.shape == (40, 33)
    assert np.abs(out - _reference(field[..., None], 40, 33)[..., 0]).max() < 1e-5


def test_dct_matrix_is_the_rounded_orthonormal_dct_and_its_matmul_is_exact_integer_arithmetic():
    k, n = np.mgrid[0:8, 0:8]
    exact = np.where(k == 0, math.sqrt(1 / 8), 0.5) * np.cos((2 * n + 1) * k * math.pi / 16) * 4096
    assert np.array_equal(pixels._DCT, np.rint(exact).astype(np.int64))
    a = np.full((3, 8, 8), 2**30 + 1, dtype=np.int64)  # a float64 product (53 bits) could not hold these sums
    assert (a @ np.full((8, 8), 2**20 + 3, dtype=np.int64) == 8 * (2**30 + 1) * (2**20 + 3)).all()


def test_quant_tables_scale_like_libjpeg():
    luma, chroma = pixels.quant_tables(50)
    assert np.array_equal(luma, pixels._LUMA_Q) and np.array_equal(chroma, pixels._CHROMA_Q)
    assert luma[0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61] and chroma[0, 0] == 17
    assert pixels.quant_tables(75)[0][0].tolist() == [8, 6, 5, 8, 12, 20, 26, 31]  # libjpeg's quality-75 table
    assert np.all(pixels.quant_tables(100)[0] == 1) and np.all(pixels.quant_tables(100)[1] == 1)
    assert pixels.quant_tables(1)[0].max() == 255


def _blockiness(image: np.ndarray) -> float:
    """Mean step across the 8-pixel block columns over the mean step inside the blocks."""
    steps = np.abs(np.diff(image.astype(np.float64), axis=1)).mean(axis=(0, 2))
    return steps[7::8].mean() / np.delete(steps, np.s_[7::8]).mean()


def test_jpeg_like_changes_little_at_quality_100_and_blocks_at_low_quality():
    rng = np.random.default_rng(4)
    noise = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    change = np.abs(pixels.jpeg_like(noise, 100, subsample=False).astype(int) - noise)
    assert change.max() <= 4 and change.mean() < 1.0
    grey = np.repeat(noise[..., :1], 3, axis=2)  # no chroma to subsample
    assert np.abs(pixels.jpeg_like(grey, 100).astype(int) - grey).max() <= 2
    yy, xx = np.mgrid[0:48, 0:64]
    ramp = np.clip(np.stack([xx * 2 + yy, yy * 3 + 40, 200 - xx - yy], axis=-1), 0, 255).astype(np.uint8)
    assert _blockiness(ramp) == pytest.approx(1.0)
    assert _blockiness(pixels.jpeg_like(ramp, 100)) < 1.3
    low = pixels.jpeg_like(ramp, 10)
    assert _blockiness(low) > 5
    assert np.abs(low.astype(int) - ramp).mean() > 4


def test_jpeg_like_is_close_to_libjpeg_and_pads_partial_blocks_by_replication():
    rng = np.random.default_rng(5)
    image = pixels.resize_uint8(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), 45, 37)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=75)  # 4:2:0, like jpeg_like's default
    with Image.open(buffer) as img:
        libjpeg = np.asarray(img).astype(int)
    mine = pixels.jpeg_like(image, 75)
    assert mine.shape == image.shape and mine.dtype == np.uint8
    assert np.abs(mine - libjpeg).mean() < 1.5
    flat = np.empty((13, 21, 3), dtype=np.uint8)
    flat[:] = (200, 90, 30)
    out = pixels.jpeg_like(flat, 30)  # zero padding would give the edge blocks other values
    assert (out == out[0, 0]).all() and np.abs(out[0, 0].astype(int) - flat[0, 0]).max() <= 3


def test_the_scene_sine_and_fillet_profile_follow_what_they_replace():
    x = np.linspace(-40, 40, 200001).astype(np.float32)
    assert np.abs(scene._sine(x) - np.sin(x.astype(np.float64))).max() < 0.0011
    u = np.linspace(0, 1, 101, dtype=np.float32)
    ones = np.ones_like(u)
    square = scene._fillet(u, 0 * u, 1.0, 2.0, ones, ones)
    assert np.allclose(square, (1 - u) ** 2, atol=1e-6)
    for gamma in (1.4, 2.6, 4.5):
        profile = scene._fillet(np.float32([0, 0.5, 1]), np.zeros(3, np.float32), 1.0, gamma, 1.0, 1.0)
        assert np.allclose(profile, [1, 0.5**gamma, 0], atol=1e-6)
        assert np.all(np.diff(scene._fillet(u, 0 * u, 1.0, gamma, ones, ones)) <= 0)  # falls from tip to toe


def test_generation_does_not_use_pillow(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Pillow called while generating")

    for name in ("fromarray", "open", "frombuffer"):
        monkeypatch.setattr(Image, name, refuse)
    for name in ("save", "resize"):
        monkeypatch.setattr(Image.Image, name, refuse)
    out = generate(tmp_path / "ds", n=10, seed=0, size=16, workers=1)
    assert len(list(out.rglob("*.png"))) == 10
