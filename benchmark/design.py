"""Design warnings: an experiment whose numbers cannot mean what they seem to (too few folds, validation parts so
small that scores tie, under-trained runs, inputs so small that class activation maps are flat).

`run --dry-run` prints them before anything is trained (`plan_warnings`); the report lists them beside its results
(`report_warnings`, from the records and the resolved config).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import pandas as pd

MIN_BLOCKS = 5  # paired folds (× repeats) below which the t quantile of the interval balloons
MIN_VAL_IMAGES = 50  # a validation part below this moves in steps over 2 pp: epochs and tuning trials tie
LAST_EPOCH_SHARE = 0.1  # warn when at least this share of the runs selected their last epoch
FLAT_CAM_SIDE = 1  # a CAM layer whose map is 1×1 gives a flat map (measured: docs/explain.md)


def few_folds(blocks: int) -> str | None:
    """Fewer than MIN_BLOCKS paired blocks: the 95% interval's t quantile, and what to do."""
    if blocks >= MIN_BLOCKS:
        return None
    if blocks < 2:
        return ("a single train/test split: no paired folds, so no interval or test of a difference between methods; "
                "pool the parts (data.layout: folders) and use protocol.kind: kfold with 5 folds or more")
    from scipy.stats import t

    quantile = float(t.ppf(0.975, blocks - 1))
    return (f"{blocks} paired fold(s): a difference's 95% interval uses t = {quantile:.2f} ({blocks - 1} degrees of "
            f"freedom, {quantile / 1.96:.1f}× the normal 1.96) on top of the fold-to-fold spread, so the interval is wide and "
            f"only large differences show; use protocol.folds: {MIN_BLOCKS} or more (or protocol.repeats)")


def small_validation(n_val: int) -> str | None:
    """A validation part so small that its scores move in big steps (ties pick the earlier epoch or trial)."""
    if n_val >= MIN_VAL_IMAGES:
        return None
    return (f"the smallest validation part holds {n_val} image(s): its accuracy moves in steps of "
            f"{100 / max(1, n_val):.1f} pp, so epochs and tuning trials often tie and the selection is close to "
            "arbitrary; raise protocol.val_fraction or add images")


def last_epoch_runs(results: pd.DataFrame, epochs: int | None, select_by: str | None) -> str | None:
    """Runs whose selected epoch is the last one trained (without early stopping): still improving, under-trained."""
    if select_by == "last" or not epochs or epochs < 2 or not {"selected_epoch", "status"} <= set(results):
        return None
    done = results[results["status"] == "done"]
    selected = pd.to_numeric(done["selected_epoch"], errors="coerce")
    run = pd.to_numeric(done.get("epochs_run", pd.Series(index=done.index, dtype=float)), errors="coerce")
    last = int(((selected == epochs) & (run == epochs)).sum())
    if not len(done) or last < max(1, LAST_EPOCH_SHARE * len(done)):
        return None
    return (f"{last} of {len(done)} runs selected their last epoch ({epochs}): they were still improving when training "
            "stopped (under-trained); raise train.epochs")


@functools.lru_cache(maxsize=64)
def cam_map_side(backbone: str, image_size: int) -> int | None:
    """Side of the map at the backbone's CAM layer for `image_size` inputs (None when it cannot be built here)."""
    import torch

    import methods
    from benchmark.explain.cams import cam_target

    try:
        model = methods.build_backbone(backbone, 2, image_size)
        layer = cam_target(model, backbone, image_size).layer
    except Exception:  # noqa: BLE001 - a backbone that cannot be built is refused elsewhere, with its own message
        return None
    shapes: list[tuple[int, ...]] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        handle.remove()
    if not shapes:
        return None
    shape = shapes[-1]
    if len(shape) == 4:  # NCHW, or NHWC (Swin): the two smallest of the last three are the spatial sides
        return min(sorted(shape[1:])[:2])
    if len(shape) == 3:  # tokens [N, prefix + H·W, C]
        return int((shape[1]) ** 0.5)
    return None


def flat_cams(backbones: Iterable[str], image_size: int) -> str | None:
    """Backbones whose CAM layer is 1×1 at this input size: every activation map is flat (explain shows nothing)."""
    flat = [b for b in dict.fromkeys(backbones) if (side := cam_map_side(b, image_size)) is not None
            and side <= FLAT_CAM_SIDE]
    if not flat:
        return None
    return (f"at data.image_size {image_size} the last feature map of {', '.join(flat)} is 1×1, so every class "
            "activation map is flat and `explain` cannot show where a model looks; if the maps matter, use an input "
            "that leaves at least 2×2 (ResNets, GoogLeNet, Swin: 33 px or more; 64 px gives 2×2, 96 px 3×3)")


def plan_warnings(cfg, folds: list, records: list[dict] = ()) -> list[str]:
    """Design warnings before anything (more) runs: folds, validation size, CAM flatness, and the last-epoch runs among
    the `records` already in the output folder."""
    blocks = cfg.protocol.folds * cfg.protocol.repeats if cfg.protocol.kind == "kfold" else 1
    n_val = min((len(f.val) for f in folds), default=0)
    trained = last_epoch_runs(pd.DataFrame(list(records)), cfg.train.epochs, cfg.protocol.select_by) if records else None
    found = [few_folds(blocks), small_validation(n_val), trained, flat_cams(cfg.backbone_names(), cfg.data.image_size)]
    return [w for w in found if w]


def report_warnings(results: pd.DataFrame, config: dict) -> list[str]:
    """Design warnings from finished runs and the resolved config (the report's list)."""
    protocol, train, data = (config.get(k) or {} for k in ("protocol", "train", "data"))
    blocks = results[["repeat", "fold"]].drop_duplicates().shape[0] if {"repeat", "fold"} <= set(results) else 0
    if protocol.get("kind", "kfold") == "kfold" and protocol.get("folds"):
        blocks = int(protocol["folds"]) * int(protocol.get("repeats") or 1)
    n_val = pd.to_numeric(results.get("n_val", pd.Series(dtype=float)), errors="coerce").dropna()
    backbones = [b if isinstance(b, str) else b.get("name") for b in config.get("backbones") or []]
    found = [
        few_folds(blocks) if blocks else None,
        small_validation(int(n_val.min())) if len(n_val) else None,
        last_epoch_runs(results, train.get("epochs"), protocol.get("select_by")),
        flat_cams([b for b in backbones if b], int(data["image_size"])) if data.get("image_size") else None,
    ]
    return [w for w in found if w]
