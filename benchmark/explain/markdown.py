"""explain.md: the explain folder's figures and tables as one Markdown page (for the report to include)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmark.explain.cams import CAM_TITLES
from benchmark.pages import markdown_table


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def _table(frame: pd.DataFrame, columns: dict[str, str]) -> str:
    shown = frame[[c for c in columns if c in frame]].rename(columns=columns)
    return markdown_table(shown, index=False, floatfmt=".3f")


FLAT_REASON = "(e.g. the target layer's feature map is 1×1 at this image size)"


def flat_failures(folder: Path) -> list[str]:
    """The (method, backbone, CAM) whose every map is flat: the localization measures are undefined, a failure."""
    path = folder / "localization.csv"
    frame = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    if frame.empty or not {"flat_maps", "n_eval"} <= set(frame):
        return []
    failed = frame[frame["flat_maps"] >= frame["n_eval"]]
    return [f"{r['label']} {r['backbone']} {CAM_TITLES.get(r['cam'], r['cam'])}" for _, r in failed.iterrows()]


def _runs(info: dict) -> str:
    frame = pd.DataFrame(info["runs"])
    return _table(frame, {"run_id": "run", "backbone": "backbone", "label": "method", "fold": "fold", "seed": "seed",
                          "test_accuracy": "test acc.", "test_f1": "test F1"})


def _cams(info: dict, folder: Path) -> list[str]:
    cams = ", ".join(CAM_TITLES.get(c, c) for c in info["cams"])
    out = ["## Class activation maps", "",
           f"{cams} (grad-cam package) of the class each model predicts, on test images of the run's fold chosen with "
           f"seed {info['seed']}: correct and misclassified, every class. Title: predicted class and its probability "
           "(red: wrong).", ""]
    for backbone, part in info["backbones"].items():
        layer = part["target_layer"]
        out += [f"![{backbone}]({part['figure']})", "", f"*{backbone}: target layer `{layer['path']}` ({layer['rule']} rule).*",
                ""]
    frame = pd.read_csv(folder / "localization.csv") if (folder / "localization.csv").is_file() else pd.DataFrame()
    if not frame.empty:
        frame["cam"] = frame["cam"].map(lambda c: CAM_TITLES.get(c, c))
        out += [f"Localization on {int(frame['n_eval'].iloc[0])} test images: **ROAD drop** = fall of the predicted "
                f"class's probability when the map's top {round(100 * info['top_fraction'])}% pixels are removed and "
                "imputed (higher = the map points at evidence the model uses); **concentration** = share of the map's "
                "mass inside that top region (higher = more focused).", "",
                _table(frame, {"backbone": "backbone", "label": "method", "cam": "CAM", "road_drop": "ROAD drop ↑",
                               "concentration": "concentration ↑", "flat_maps": "flat maps"}), ""]
        failed = flat_failures(folder)
        if failed:
            out += [f"**Failed:** every map of {', '.join(failed)} is flat {FLAT_REASON}: no localization, and no "
                    "ROAD drop, concentration or map stability for it.", ""]
        if frame["flat_maps"].sum() > 0:
            out += ["Flat maps (constant, e.g. when the target layer's feature map is 1×1 at this image size) localize "
                    "nothing: they are left out of these means and of the stability measures.", ""]
    return out


def _noise(info: dict, folder: Path) -> list[str]:
    noise = info["noise"]
    levels = "; ".join(f"{kind}: {', '.join(f'{v:g}' for v in spec['levels'])} ({spec['definition']})"
                       for kind, spec in noise.items() if isinstance(spec, dict) and "levels" in spec)
    out = ["## Robustness to noise", "",
           f"Noise on [0, 1] pixels before the training normalization, seed {noise['seed']} (the same noisy images for "
           f"every model): {levels}. Accuracy and F1 on the whole test part; map stability (Pearson r and IoU of the "
           f"top {round(100 * info['top_fraction'])}% regions, clean vs noisy map of the class predicted on the clean "
           f"image) on {info['eval_images'] or 'all'} test images.", ""]
    out += [f"![noise {backbone}]({name})\n" for backbone, name in info["figures"].items()]
    path = folder / "noise_summary.csv"
    if path.is_file():
        frame = pd.read_csv(path)
        frame["cam"] = frame["cam"].map(lambda c: CAM_TITLES.get(c, c))
        out += ["Means over the noisy levels (level > 0):", "",
                _table(frame, {"backbone": "backbone", "label": "method", "noise": "noise", "cam": "CAM",
                               "mean_accuracy": "accuracy", "mean_f1": "F1", "mean_macro_f1": "macro F1",
                               "mean_pearson": "map r",
                               "mean_iou_top20": "top-20% IoU"}), ""]
    return out


def _diversity(info: dict, folder: Path) -> list[str]:
    out = ["## Feature diversity", "",
           f"Features: {info['features']}, on the test part. Measure: {info['measure']}. Raw pixels: the same measure "
           "on the flattened test images (no model), a reference for the data itself.", ""]
    path = folder / "diversity.csv"
    if path.is_file():
        frame = pd.read_csv(path)
        out += [_table(frame, {"backbone": "backbone", "label": "method", "n_images": "N", "dim": "D",
                               "entropy": "entropy (nats)", "effective_rank": "effective rank",
                               "effective_rank_ratio": "eff. rank / max", "top1_variance": "PC1 share"}), ""]
    figures = info.get("figures", {})
    out += [f"![{key}]({name})\n" for key, name in figures.items()]
    return out


def write_markdown(folder: Path) -> str:
    """The page text for whatever parts the folder holds (each part's .json says how it was made)."""
    parts = {name: _json(folder / f"{name}.json") for name in ("cams", "noise", "diversity")}
    present = {k: v for k, v in parts.items() if v}
    if not present:
        return "# Explanations\n\nNothing computed yet: run `python -m benchmark explain OUTPUT_DIR`.\n"
    first = next(iter(present.values()))
    out = [f"# Explanations: {first['experiment']}", "", "Runs (selected checkpoint of each):", "", _runs(first), ""]
    if parts["cams"]:
        out += _cams(parts["cams"], folder)
    if parts["noise"]:
        out += _noise(parts["noise"], folder)
    if parts["diversity"]:
        out += _diversity(parts["diversity"], folder)
    return "\n".join(out).rstrip() + "\n"
