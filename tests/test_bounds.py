"""One validation authority: the schema's bounds are what the code accepts. Every bounded number of the `train` and
`protocol` sections, at its smallest allowed value, passes every check `run` makes before training (and the one
below it is refused by the schema); the smallest batch size trains."""

from __future__ import annotations

import dataclasses
import json

import pytest

from benchmark.config import apply_overrides, validate_experiment
from benchmark.errors import UserError
from benchmark.experiment import MIN_BATCH_SIZE, Protocol, Section, Train, section_of, unwrap


def _bounded(section: type[Section], prefix: str) -> list[tuple[str, float, float]]:
    """(dotted key, smallest allowed value, a value just below it) for every number key with a lower bound."""
    out = []
    for name, field in section.model_fields.items():
        annotation, _, metadata = unwrap(field)
        inner = section_of(annotation)
        if inner is not None:
            out += _bounded(inner, f"{prefix}{name}.")
            continue
        for item in metadata:
            if getattr(item, "ge", None) is not None:
                low = item.ge
                out.append((f"{prefix}{name}", low, low - 1 if annotation is int else low - 1e-3))
            elif getattr(item, "gt", None) is not None:
                out.append((f"{prefix}{name}", item.gt + (1 if annotation is int else 1e-3), item.gt))
    return out


# Bounds that depend on the data, not on the code: the smallest workable value is the data's to set.
DATA_DEPENDENT = {"protocol.val_fraction": "a validation part needs one image per class: depends on the images"}
KEYS = [k for k in _bounded(Train, "train.") + _bounded(Protocol, "protocol.") if k[0] not in DATA_DEPENDENT]
ENABLED = ["train.scheduler={}", "train.early_stopping={}"]  # sections that are off by default: their keys count too


def test_the_walk_covers_the_batch_size_and_the_folds():
    keys = {key: low for key, low, _ in KEYS}
    assert keys["train.batch_size"] == MIN_BATCH_SIZE == 2 and keys["protocol.folds"] == 2
    assert len(keys) >= 10


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from benchmark.config import load_config
    from benchmark.sweep import open_sweep
    from tests.helpers import make_image_folder, write_config

    root = tmp_path_factory.mktemp("bounds")
    path = write_config(root / "exp.yaml", make_image_folder(root / "data", {"normal": 12, "defective": 12}),
                        run={"output": str(root / "out"), "device": "cpu"})
    cfg = load_config(path, ENABLED)
    return cfg, open_sweep(cfg)


@pytest.mark.parametrize("key, low, below", KEYS, ids=[key for key, _, _ in KEYS])
def test_the_smallest_allowed_value_passes_every_check_and_the_one_below_is_refused(key, low, below, base):
    from benchmark.runner import check_sweep
    from benchmark.sweep import open_sweep

    cfg, sweep = base
    raw = cfg.model_dump()
    at_bound = validate_experiment(apply_overrides(raw, [f"{key}={json.dumps(low)}"], "t"), "t").located(
        cfg.source, cfg.folder)
    changed = open_sweep(at_bound) if key.startswith("protocol.") else dataclasses.replace(sweep, cfg=at_bound)
    check_sweep(changed)  # what `run` checks before it writes anything: no refusal at the schema's bound
    with pytest.raises(UserError):
        validate_experiment(apply_overrides(raw, [f"{key}={json.dumps(below)}"], "t"), "t")


def test_the_smallest_batch_size_trains(tmp_path):
    from tests.helpers import augmented_experiment, train_tiny

    result = train_tiny(augmented_experiment(tmp_path), [f"train.batch_size={MIN_BATCH_SIZE}", "train.epochs=1"], "b")
    assert result.epochs_run == 1 and result.history["train_loss"].notna().all()
