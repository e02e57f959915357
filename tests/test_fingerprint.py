"""The dataset fingerprint follows the image bytes, so an image edited in place is never mistaken for the old one."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from benchmark.data.cache import decode
from benchmark.data.folders import scan
from tests.helpers import make_image_folder


def _rewrite_same_size(path, value: int) -> None:
    """Overwrite a PNG with other pixels and the same byte size and mtime (the hardest edit to notice)."""
    before = path.stat()
    Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)).save(path, compress_level=0)
    data = path.read_bytes()
    size = before.st_size
    path.write_bytes(data[:size] if len(data) >= size else data + b"\0" * (size - len(data)))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def test_fingerprint_and_decoded_cache_follow_edits_in_place(tmp_path):
    root = make_image_folder(tmp_path / "data", {"a": 3, "b": 3})
    for path in sorted(root.rglob("*.png")):
        Image.fromarray(np.full((16, 16, 3), 10, dtype=np.uint8)).save(path, compress_level=0)
    cache = tmp_path / "decoded"
    files = scan(root)
    before_fp = files.fingerprint()
    before = decode(files, 16, cache_dir=cache).images
    target = files.files[0]
    _rewrite_same_size(target, 200)
    again = scan(root)
    assert again.fingerprint() != before_fp
    after = decode(again, 16, cache_dir=cache).images
    assert after[0].mean() > 150 and before[0].mean() < 20
    np.testing.assert_array_equal(after[1:], before[1:])


def test_digests_are_sha256_of_the_bytes_and_remembered(tmp_path, monkeypatch):
    import hashlib

    from benchmark.data import digests

    root = make_image_folder(tmp_path / "data", {"a": 2, "b": 2})
    files = scan(root)
    assert files.digests() == [hashlib.sha256(p.read_bytes()).hexdigest() for p in files.files]
    monkeypatch.setattr(digests, "file_digest", lambda path: (_ for _ in ()).throw(AssertionError("re-hashed")))
    assert scan(root).fingerprint() == files.fingerprint()
