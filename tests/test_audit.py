"""Data audit: bad files, duplicates, leakage across folds, planted shortcuts, odd files."""

from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from benchmark.audit import render_markdown, render_summary, run_audit
from benchmark.audit.features import colour_stats, sharpness
from benchmark.data.folders import scan
from benchmark.protocol import Fold

TREES = 15


def smooth_image(rng: np.random.Generator, w: int, h: int | None = None) -> Image.Image:
    """Random smooth RGB content (6x6 random colours up-sampled): distinct perceptual hashes, stable when re-scaled."""
    low = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    return Image.fromarray(low, "RGB").resize((w, h or w), Image.Resampling.BICUBIC)


def make_class(folder: Path, n: int, size: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        smooth_image(rng, size).save(folder / f"img ({i}).png")


def index_of(files, rel: str) -> int:
    return files.relative().index(rel)


@pytest.fixture
def messy(tmp_path) -> Path:
    """Two classes with an exact copy, a cross-class copy, a re-scaled JPEG copy and three bad files."""
    root = tmp_path / "messy"
    rng = np.random.default_rng(1)
    make_class(root / "a", 12, 40, rng)
    make_class(root / "b", 12, 40, rng)
    shutil.copy(root / "a" / "img (0).png", root / "a" / "copy of img (0).png")
    shutil.copy(root / "a" / "img (1).png", root / "b" / "img (1) again.png")
    with Image.open(root / "a" / "img (2).png") as img:
        img.convert("RGB").resize((33, 33), Image.Resampling.BILINEAR).save(root / "a" / "near.jpg", quality=85)
    data = (root / "b" / "img (3).png").read_bytes()
    (root / "b" / "broken.png").write_bytes(data[: len(data) // 2])
    (root / "b" / "notes.png").write_text("this is not an image\n")
    (root / "b" / "readme.txt").write_text("class b\n")
    return root


def test_finds_duplicates_and_bad_files(messy, monkeypatch):
    monkeypatch.setattr("benchmark.audit.duplicates.BLOCK_ELEMENTS", 60)  # compare hashes in blocks of 2 rows
    files = scan(messy)
    result = run_audit(files, None, image_size=32, trees=TREES)

    bad = {b["file"]: b["reason"] for b in result["inventory"]["unreadable"]}
    assert set(bad) == {"b/broken.png", "b/notes.png", "b/readme.txt"}
    assert bad["b/notes.png"] == "not an image file"
    assert bad["b/readme.txt"] == "not an image file"
    assert bad["b/broken.png"].startswith("unreadable")

    # independent: group the files by the SHA-256 of their bytes
    by_hash: dict[str, set[str]] = {}
    for path, rel in zip(files.files, files.relative(), strict=True):
        by_hash.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), set()).add(rel)
    expected_groups = {frozenset(g) for g in by_hash.values() if len(g) > 1}
    found_groups = {frozenset(g["files"]) for g in result["duplicates"]["exact"]["list"]}
    assert found_groups == expected_groups
    assert frozenset({"a/img (0).png", "a/copy of img (0).png"}) in found_groups
    cross = [g for g in result["duplicates"]["exact"]["list"] if len(g["classes"]) == 2]
    assert [set(g["files"]) for g in cross] == [{"a/img (1).png", "b/img (1) again.png"}]

    # independent: all readable pairs whose phash differs in <= 4 bits, minus byte-identical pairs
    readable = [(rel, p) for rel, p in zip(files.relative(), files.files, strict=True) if rel not in bad]
    hashes = {rel: imagehash.phash(Image.open(p).convert("RGB")) for rel, p in readable}
    sha = {rel: hashlib.sha256(p.read_bytes()).hexdigest() for rel, p in readable}
    expected_near = {
        frozenset((x, y)) for x, y in itertools.combinations(hashes, 2) if hashes[x] - hashes[y] <= 4 and sha[x] != sha[y]
    }
    found_near = {frozenset((p["a"], p["b"])) for p in result["duplicates"]["near"]["list"]}
    assert found_near == expected_near
    assert frozenset({"a/img (2).png", "a/near.jpg"}) in found_near

    topics = {f["topic"] for f in result["findings"]}
    assert {"unreadable", "label-conflicts", "exact-duplicates"} <= topics


def test_leakage_counts_copies_split_across_train_and_test(messy):
    files = scan(messy)
    n = len(files.files)
    original, copy = index_of(files, "a/img (0).png"), index_of(files, "a/copy of img (0).png")
    near_a, near_b = index_of(files, "a/img (2).png"), index_of(files, "a/near.jpg")
    others = [i for i in range(n) if i not in (original, copy, near_a, near_b)]
    empty = np.empty(0, dtype=np.int64)
    split = Fold(0, 0, np.array(sorted(others + [original, near_a])), empty, np.array(sorted([copy, near_b])))
    together = Fold(0, 1, np.array(sorted(others + [original, copy, near_a, near_b])), empty, empty)
    in_val = Fold(0, 2, np.array(sorted(others)), np.array([original]), np.array([copy]))
    result = run_audit(files, [split, together, in_val], image_size=32, trees=TREES)

    folds = result["leakage"]["folds"]
    assert (folds[0]["leaked_exact"], folds[0]["leaked_near"], folds[0]["test"]) == (1, 1, 2)
    assert {(e["test"], e["train"], e["kind"]) for e in folds[0]["examples"]} == {
        ("a/copy of img (0).png", "a/img (0).png", "exact"),
        ("a/near.jpg", "a/img (2).png", "near"),
    }
    assert folds[1]["leaked"] == 0
    assert folds[2]["leaked_exact"] == 1  # the validation part counts as training for leakage
    assert any(f["topic"] == "leakage" for f in result["findings"])


def test_label_conflict_warning_names_the_files_in_console_and_markdown(messy, monkeypatch):
    with Image.open(messy / "a" / "img (4).png") as img:
        img.convert("RGB").resize((33, 33), Image.Resampling.BILINEAR).save(messy / "b" / "img (4) small.jpg", quality=85)
    result = run_audit(scan(messy), None, image_size=32, trees=TREES)
    near = {frozenset((p["a"], p["b"])) for p in result["duplicates"]["near"]["list"] if p["class_a"] != p["class_b"]}
    assert near == {frozenset({"a/img (4).png", "b/img (4) small.jpg"})}
    names = ["a/img (1).png", "b/img (1) again.png", "a/img (4).png", "b/img (4) small.jpg"]
    conflict = next(f for f in result["findings"] if f["topic"] == "label-conflicts")
    for text in (conflict["message"], render_summary(result), render_markdown(result).split("### Classes")[0]):
        for name in names:
            assert repr(name) in text, name
    assert "labels a, b" in conflict["message"]
    monkeypatch.setattr("benchmark.audit.findings.MAX_NAMED", 1)
    short = next(f for f in run_audit(scan(messy), None, image_size=32, trees=TREES)["findings"]
                 if f["topic"] == "label-conflicts")
    assert "and 1 more" in short["message"] and "'a/img (1).png'" in short["message"]


def planted(tmp_path: Path, size_a: int, size_b: int, n: int = 25) -> Path:
    root = tmp_path / f"set-{size_a}-{size_b}"
    rng = np.random.default_rng(7)
    make_class(root / "A", n, size_a, rng)
    make_class(root / "B", n, size_b, rng)
    return root


def test_flags_planted_size_shortcut(tmp_path):
    result = run_audit(scan(planted(tmp_path, 20, 60)), None, image_size=48, trees=TREES)
    sets = {s["key"]: s for s in result["shortcuts"]["tasks"][0]["sets"]}
    assert sets["size"]["balanced_accuracy"] >= 0.9
    assert sets["format"]["balanced_accuracy"] < 0.75  # all PNG: nothing to learn from the format
    flagged = {f["topic"]: f for f in result["findings"] if f["topic"].startswith("shortcut:")}
    assert flagged["shortcut:task:size"]["severity"] == "warning"
    assert "from how the images were made" in render_markdown(result)
    assert "solder" not in render_markdown(result)  # neutral words: the data need not be solder joints


def test_no_shortcut_no_flag(tmp_path):
    result = run_audit(scan(planted(tmp_path, 40, 40)), None, image_size=48, trees=TREES)
    assert not [f for f in result["findings"] if f["topic"].startswith("shortcut:")]
    for row in result["shortcuts"]["tasks"][0]["sets"]:
        assert row["balanced_accuracy"] < 0.75


def test_majority_baseline_matches_independent_count(tmp_path):
    extra = planted(tmp_path, 30, 30, n=10) / "A"
    rng = np.random.default_rng(3)
    for i in range(8):
        smooth_image(rng, 30).save(extra / f"more {i}.png")
    files = scan(tmp_path / "set-30-30")
    labels = files.labels
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    parts = np.array_split(order, 3)
    empty = np.empty(0, dtype=np.int64)
    folds = [Fold(0, k, np.sort(np.concatenate([p for j, p in enumerate(parts) if j != k])), empty, np.sort(parts[k]))
             for k in range(3)]
    result = run_audit(files, folds, image_size=32, trees=TREES)
    expected = []
    for fold in folds:
        majority = np.argmax(np.bincount(labels[fold.train], minlength=2))
        expected.append(np.mean(labels[fold.test] == majority))
    assert result["shortcuts"]["tasks"][0]["majority"]["accuracy"] == pytest.approx(float(np.mean(expected)))


def test_merged_class_adds_a_within_task(tmp_path):
    root = tmp_path / "three"
    rng = np.random.default_rng(5)
    make_class(root / "normal", 20, 30, rng)
    make_class(root / "short", 10, 30, rng)
    make_class(root / "shifted", 10, 30, rng)
    files = scan(root, classes={"defective": ["short", "shifted"], "normal": ["normal"]})
    result = run_audit(files, None, image_size=32, positive="defective", trees=TREES)
    tasks = {t["key"]: t for t in result["shortcuts"]["tasks"]}
    assert tasks["task"]["positive"] == "defective"
    assert "f1" in tasks["task"]["sets"][0]
    assert tasks["within:defective"]["classes"] == ["shifted", "short"]
    assert tasks["within:defective"]["counts"] == [10, 10]


def test_odd_files_do_not_crash(tmp_path):
    root = tmp_path / "odd [set] (1)"
    rng = np.random.default_rng(2)
    a, b = root / "class one", root / "class (two)"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    for i in range(5):
        smooth_image(rng, 24).save(a / f"img ({i}).PNG")
        smooth_image(rng, 30, 20).convert("L").save(b / f"grey [{i}].TIF")
    smooth_image(rng, 24).convert("RGBA").save(a / "rgba (x).png")
    smooth_image(rng, 24).convert("P").save(a / "palette.GIF")
    smooth_image(rng, 16).save(a / "scan (1).tiff")
    deep = (np.asarray(smooth_image(rng, 20).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(b / "deep 16-bit (1).tif")
    files = scan(root)
    result = run_audit(files, None, image_size=32, trees=TREES)
    assert result["inventory"]["unreadable"] == []
    modes = {m for c in result["inventory"]["classes"] for m in c["modes"]}
    assert {"RGB", "L", "RGBA", "P", "I;16"} <= modes
    formats = {f for c in result["inventory"]["classes"] for f in c["formats"]}
    assert {"PNG", "TIFF", "GIF"} <= formats
    assert "## Data audit" in render_markdown(result)


def test_sharpness_and_colour_against_numpy():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    grey = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    padded = np.pad(grey, 1, mode="symmetric")
    lap = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4 * grey
    assert sharpness(img) == pytest.approx(np.var(lap), rel=1e-12)
    stats = colour_stats(img)
    assert stats["mean_g"] == pytest.approx(img[..., 1].astype(np.float64).mean())
    assert stats["contrast"] == pytest.approx(np.std(grey), rel=1e-12)


def test_advice_leaves_out_what_the_experiment_already_does(tmp_path, messy):
    """A cue the experiment already mitigates gets no advice to switch that mitigation on; leakage and copies point at
    protocol.group_by: duplicates, the tool's own fix."""
    plain = run_audit(scan(planted(tmp_path, 20, 60)), None, image_size=48, trees=TREES)
    size = next(f for f in plain["findings"] if f["topic"] == "shortcut:task:size")
    assert "data.resize: {policy: via" in size["mitigation"] and size["action"] == "resize_via"
    via = run_audit(scan(planted(tmp_path, 20, 60)), None, image_size=48, resize_policy="via", via=16, trees=TREES)
    size = next(f for f in via["findings"] if f["topic"] == "shortcut:task:size")
    assert "already goes through 16 px" in size["mitigation"] and "{policy: via" not in size["mitigation"]
    assert size["action"] is None

    files = scan(messy)
    copy, original = index_of(files, "a/copy of img (0).png"), index_of(files, "a/img (0).png")
    others = np.setdiff1d(np.arange(len(files.files)), [copy, original])
    split = Fold(0, 0, np.sort(np.append(others[:10], original)), np.empty(0, dtype=np.int64), np.array([copy]))
    loose = {f["topic"]: f for f in run_audit(files, [split], image_size=32, trees=TREES)["findings"]}
    assert "protocol.group_by: duplicates" in loose["exact-duplicates"]["mitigation"]
    assert "protocol.group_by: duplicates" in loose["leakage"]["mitigation"]
    grouped = {f["topic"]: f for f in run_audit(files, [split], image_size=32, group_by="duplicates",
                                                trees=TREES)["findings"]}
    assert grouped["exact-duplicates"]["mitigation"] is None and grouped["exact-duplicates"]["severity"] == "info"
    assert "set protocol.group_by" not in grouped["leakage"]["mitigation"]
    fixed = {f["topic"]: f for f in run_audit(files, [split], image_size=32, fixed_split=True,
                                              trees=TREES)["findings"]}
    for topic in ("leakage", "exact-duplicates"):  # a folder's own parts: grouping cannot apply, deleting can
        assert "all but one part" in fixed[topic]["mitigation"] and fixed[topic]["action"] is None


def test_advice_names_only_options_the_tool_has():
    from benchmark.audit.findings import _consequence

    for key, kind in (("colour", "metadata"), ("size", "metadata"), ("input", "input"), ("format", "metadata")):
        _, advice, _ = _consequence(key, kind, {"resize_policy": "stretch"})
        assert "jitter" not in advice and "grey" not in advice and "gray" not in advice


def test_majority_wording_says_what_was_measured(tmp_path):
    """Balanced three classes: the training part's most common class scores below 1/3 on the test part; the text
    says which class is guessed and gives chance beside it."""
    root = tmp_path / "three"
    rng = np.random.default_rng(4)
    for name in ("x", "y", "z"):
        make_class(root / name, 10, 30, rng)
    result = run_audit(scan(root), None, image_size=32, trees=TREES)
    summary = render_summary(result)
    assert "most common class of each fold's training part" in summary
    assert "chance with 3 classes: 33.3% balanced accuracy" in summary
