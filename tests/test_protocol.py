import numpy as np
import pytest

from benchmark.data.folders import scan
from benchmark.errors import UserError
from benchmark.protocol import ProtocolSpec, groups_from_names, make_folds
from tests.helpers import make_image_folder


def test_folds_are_stratified_disjoint_and_cover_everything(image_folder):
    files = scan(image_folder)
    folds = make_folds(files, ProtocolSpec(folds=3, val_fraction=0.25, seed=3))
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests) == list(range(len(files.files)))
    overall = np.bincount(files.labels) / len(files.labels)
    for f in folds:
        assert not set(f.train) & set(f.test) and not set(f.val) & set(f.test) and not set(f.train) & set(f.val)
        assert len(f.train) + len(f.val) + len(f.test) == len(files.files)
        share = np.bincount(files.labels[f.test], minlength=2) / len(f.test)
        assert np.abs(share - overall).max() < 0.1


def test_same_spec_same_folds_and_repeats_differ(image_folder):
    files = scan(image_folder)
    a = make_folds(files, ProtocolSpec(folds=3, repeats=2, seed=5))
    b = make_folds(files, ProtocolSpec(folds=3, repeats=2, seed=5))
    assert all(np.array_equal(x.test, y.test) for x, y in zip(a, b))
    assert len(a) == 6
    assert not np.array_equal(a[0].test, a[3].test)


def test_group_by_keeps_groups_in_one_fold(tmp_path):
    root = make_image_folder(tmp_path / "d", {"normal": 30, "defective": 15})
    for i, path in enumerate(sorted((root / "normal").iterdir())):
        path.rename(path.with_name(f"normal_b{i % 5} ({i}).png"))
    files = scan(root)
    # seed 1: a grouped validation part is not stratified; with seed 42 one fold's has no 'normal' image (refused)
    spec = ProtocolSpec(folds=3, group_by=r"(normal_b\d)", val_fraction=0.2, seed=1)
    groups = groups_from_names(files, spec.group_by)
    for f in make_folds(files, spec):
        assert not set(groups[f.test]) & set(groups[np.concatenate([f.train, f.val])])
        assert not set(groups[f.val]) & set(groups[f.train])


def test_class_smaller_than_folds_is_refused(tmp_path):
    files = scan(make_image_folder(tmp_path / "d", {"normal": 10, "defective": 2}))
    with pytest.raises(UserError, match="class 'defective' has 2 image"):
        make_folds(files, ProtocolSpec(folds=3))


def test_fixed_split_layout_accepts_valid_folder(tmp_path):
    for part in ("train", "valid", "test"):
        make_image_folder(tmp_path / "s" / part, {"normal": 4, "defective": 3})
    files = scan(tmp_path / "s", layout="split")
    (fold,) = make_folds(files, ProtocolSpec(kind="fixed"))
    assert (len(fold.train), len(fold.val), len(fold.test)) == (7, 7, 7)
    assert {files.split[i] for i in fold.val} == {"val"}


def test_group_by_duplicates_keeps_identical_files_together(tmp_path):
    import shutil

    root = make_image_folder(tmp_path / "d", {"normal": 20, "defective": 10})
    originals = sorted((root / "normal").iterdir())[:6]
    for i, path in enumerate(originals):
        shutil.copy(path, root / "normal" / f"copy {i}.png")
    files = scan(root)
    groups = groups_from_names(files, "duplicates")
    assert len(set(groups)) == len(files.files) - 6
    # seed 1: with seed 42 one fold's (unstratified, grouped) validation part has no 'defective' image (refused)
    for f in make_folds(files, ProtocolSpec(folds=3, group_by="duplicates", val_fraction=0.2, seed=1)):
        assert not set(groups[f.test]) & set(groups[np.concatenate([f.train, f.val])])
