"""The explain command's work: activation maps, noise resilience and feature diversity of an experiment's runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from benchmark.atomic import atomic_write_text
from benchmark.errors import UserError
from benchmark.errors import safe_name as message_name
from benchmark.experiment import Experiment
from benchmark.explain import diversity as div
from benchmark.explain import figures
from benchmark.explain.cams import CAM_TITLES, CamTarget, cam_target, check_cam_methods, compute_cams, road_drop
from benchmark.explain.defaults import DEFAULT_CAMS, DEFAULT_LEVELS, PARTS
from benchmark.explain.load import (
    LoadedRun,
    TestPart,
    choose_records,
    load_experiment,
    load_run,
    order_records,
    predict,
    prepare_data,
    short_labels,
    test_part,
)
from benchmark.explain.markdown import write_markdown
from benchmark.explain.noise import (
    TOP_FRACTION,
    add_noise,
    constant_maps,
    map_stability,
    nan_mean,
    top_region,
)
from benchmark.metrics import classification_metrics
from benchmark.store import Store

RUN_KEYS = ["run_id", "backbone", "label", "method_label", "repeat", "fold", "seed"]


@dataclass
class Options:
    """What to compute; the defaults are those of the command line."""

    runs: list[str] | None = None
    images: int = 8
    cams: tuple[str, ...] = DEFAULT_CAMS
    gaussian: tuple[float, ...] = DEFAULT_LEVELS["gaussian"]
    salt_pepper: tuple[float, ...] = DEFAULT_LEVELS["salt_pepper"]
    eval_images: int = 64
    seed: int = 0
    parts: tuple[str, ...] = PARTS
    batch_size: int = 32
    show_progress: bool = True

    def levels(self) -> dict[str, list[float]]:
        return {"gaussian": sorted(set(self.gaussian)), "salt_pepper": sorted(set(self.salt_pepper))}


@dataclass
class Group:
    """One backbone's chosen runs, all on the same test part, with what the parts share."""

    backbone: str
    test: TestPart
    runs: list[LoadedRun]
    class_names: list[str]
    positive: int
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    targets: dict[str, CamTarget] = field(default_factory=dict)
    subset: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    clean_maps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def run_row(self, run: LoadedRun) -> dict:
        r = run.record
        return {"run_id": run.spec.run_id, "backbone": self.backbone, "label": run.label,
                "method_label": r.get("method_label", run.spec.method), "repeat": run.spec.repeat,
                "fold": run.spec.fold, "seed": run.spec.seed}


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def choose_images(labels: np.ndarray, wrong: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to n test positions, cycling over (class, correct by all runs) then (class, misclassified by some run).

    Within each group the order is a permutation drawn from `seed`; the result is sorted by class, correct first.
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    classes = sorted(set(labels.tolist()))
    queues = [[i for i in order if labels[i] == c and wrong[i] == w] for w in (False, True) for c in classes]
    picked: list[int] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    return np.asarray(sorted(picked, key=lambda i: (labels[i], bool(wrong[i]), i)), dtype=int)


def eval_subset(n_total: int, n: int, seed: int) -> np.ndarray:
    """The test positions the map measures use: all when n is 0 or at least n_total, else n drawn from `seed`."""
    if n <= 0 or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed + 1).permutation(n_total)[:n])


def _progress(items, desc: str, options: Options, **kwargs):
    return tqdm(items, desc=desc, file=sys.stderr, leave=False, disable=not options.show_progress, **kwargs)


def _row_label(label: str, file: str) -> str:
    """The true class, and the file's folder where it differs from the class (e.g. `defective (short)`)."""
    folder = Path(file).parent.name
    return f"{label} ({folder})" if folder and folder != label else label


def _clean_maps(group: Group, run: LoadedRun, cam: str, options: Options) -> np.ndarray:
    key = (run.spec.run_id, cam)
    if key not in group.clean_maps:
        x = group.test.normalize(group.test.images[group.subset])
        classes = group.probs[run.spec.run_id][group.subset].argmax(1)
        group.clean_maps[key] = compute_cams(run.model, group.targets[run.spec.run_id], cam, x, classes,
                                             options.batch_size)
    return group.clean_maps[key]


def cam_part(group: Group, options: Options, stage: Path) -> tuple[list[dict], dict]:
    """The CAM grid figure of the group and the localization measures of its runs' maps."""
    labels = group.test.labels
    wrong = np.zeros(len(labels), dtype=bool)
    for probs in group.probs.values():
        wrong |= probs.argmax(1) != labels
    chosen = choose_images(labels, wrong, options.images, options.seed)
    x = group.test.normalize(group.test.images[chosen])
    columns = []
    for run in _progress(group.runs, f"maps {group.backbone}", options):
        probs = group.probs[run.spec.run_id][chosen]
        pred = probs.argmax(1)
        titles = [f"{group.class_names[p]} {probs[i, p]:.2f}" for i, p in enumerate(pred)]
        for cam in options.cams:
            maps = compute_cams(run.model, group.targets[run.spec.run_id], cam, x, pred, options.batch_size)
            columns.append(figures.CamColumn(f"{run.label}\n{CAM_TITLES[cam]}", maps, titles, list(pred != labels[chosen])))
    row_labels = [_row_label(group.class_names[labels[i]], group.test.files[i]) for i in chosen]
    name = f"cams_{safe_name(group.backbone)}.png"
    figures.cam_grid(group.test.uint8(chosen), row_labels, columns,
                     f"{group.backbone}: class activation maps of the predicted class (title: prediction and its "
                     f"probability, red = wrong); fold {group.test.fold} test images", stage / name)
    rows = []
    x_eval = group.test.normalize(group.test.images[group.subset])
    for run in _progress(group.runs, f"localization {group.backbone}", options):
        classes = group.probs[run.spec.run_id][group.subset].argmax(1)
        for cam in options.cams:
            maps = _clean_maps(group, run, cam, options)
            mass = maps.reshape(len(maps), -1).astype(np.float64)
            top = top_region(maps).reshape(len(maps), -1)
            flat = constant_maps(maps)
            concentration = np.where(flat, np.nan, (mass * top).sum(1) / np.maximum(mass.sum(1), 1e-12))
            drop = road_drop(run.model, x_eval, maps, classes, 100 - int(round(100 * TOP_FRACTION)),
                             options.batch_size, options.seed)
            rows.append(group.run_row(run) | {"cam": cam, "road_drop": nan_mean(drop),
                                              "concentration": nan_mean(concentration),
                                              "flat_maps": int(flat.sum()), "n_eval": len(group.subset)})
    info = {
        "figure": name,
        "target_layer": {"path": group.targets[group.runs[0].spec.run_id].path,
                         "rule": group.targets[group.runs[0].spec.run_id].rule},
        "images": [{"file": group.test.files[i], "label": group.class_names[labels[i]], "position": int(i),
                    "misclassified_by_some_run": bool(wrong[i])} for i in chosen],
    }
    return rows, info


def noise_part(group: Group, options: Options) -> list[dict]:
    """Accuracy and F1 of each run under each noise level, and the stability of its maps (clean vs noisy)."""
    rows = []
    steps = [(kind, level) for kind, levels in options.levels().items() for level in levels]
    for kind, level in _progress(steps, f"noise {group.backbone}", options):
        noisy = add_noise(group.test.images, kind, level, options.seed)
        x_all = group.test.normalize(noisy)
        x_eval = x_all[group.subset]
        for run in group.runs:
            probs = predict(run.model, x_all, options.batch_size)
            scores = classification_metrics(probs, group.test.labels, group.positive)
            classes = group.probs[run.spec.run_id][group.subset].argmax(1)
            for cam in options.cams:
                maps = compute_cams(run.model, group.targets[run.spec.run_id], cam, x_eval, classes, options.batch_size)
                pearson, iou = map_stability(_clean_maps(group, run, cam, options), maps)
                rows.append(group.run_row(run) | {
                    "noise": kind, "level": level, "accuracy": scores["accuracy"], "f1": scores["f1"],
                    "macro_f1": scores["macro_f1"], "cam": cam, "pearson": nan_mean(pearson),
                    "iou_top20": nan_mean(iou), "undefined_pairs": int(np.isnan(iou).sum()),
                    "n_images": len(group.test.labels), "n_eval": len(group.subset),
                })
    return rows


def diversity_part(group: Group, options: Options, stage: Path) -> tuple[list[dict], str]:
    """Spectral diversity of each run's penultimate features (and of the raw pixels), with a PCA figure."""
    x = group.test.normalize(group.test.images)
    pixels = group.test.images.reshape(len(x), -1).double().numpy()
    rows = [{"run_id": "", "backbone": group.backbone, "label": "raw pixels", "method_label": "",
             "repeat": group.test.repeat, "fold": group.test.fold, "seed": -1, "features": "raw pixels"}
            | div.diversity(pixels)]
    points, subtitles = {}, {}
    for run in _progress(group.runs, f"features {group.backbone}", options):
        feats = div.penultimate_features(run.model, x, options.batch_size)
        measure = div.diversity(feats)
        rows.append(group.run_row(run) | {"features": div.FEATURES} | measure)
        points[run.label] = div.pca_2d(feats)
        subtitles[run.label] = f"eff. rank {measure['effective_rank']:.1f} / {measure['dim']}"
    name = f"pca_{safe_name(group.backbone)}.png"
    figures.pca_scatter(points, group.test.labels, group.class_names, subtitles,
                        f"{group.backbone}: penultimate features of the fold {group.test.fold} test images (PCA)",
                        stage / name)
    return rows, name


def _groups(cfg: Experiment, store: Store, options: Options) -> tuple[list[Group], list[dict]]:
    records = order_records(choose_records(store, options.runs, cfg.seeds[0]), cfg)
    prepared = prepare_data(cfg, records)
    labels = short_labels(records)
    by_backbone: dict[str, list[dict]] = {}
    for record in records:
        by_backbone.setdefault(record["backbone"], []).append(record)
    groups = []
    for backbone, members in by_backbone.items():
        folds = {(int(r["repeat"]), int(r["fold"])) for r in members}
        if len(folds) > 1:
            raise UserError(f"--runs: the runs of backbone {backbone} come from different folds {sorted(folds)}; "
                            "choose runs of one (repeat, fold) per backbone so their maps are on the same test images")
        (repeat, fold), = folds
        test = test_part(prepared, repeat, fold)
        runs = [load_run(r, store, cfg, len(prepared.class_names), labels[r["run_id"]]) for r in members]
        groups.append(Group(backbone, test, runs, prepared.class_names, prepared.positive))
    return groups, records


def _write_csv(path: Path, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    return frame


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=1, default=str))


def _common(cfg: Experiment, output_dir: Path, options: Options, records: list[dict], labels: dict[str, str]) -> dict:
    return {
        "experiment": cfg.name,
        "output": str(output_dir),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": options.seed,
        "runs": [{k: r.get(k) for k in ("run_id", "backbone", "method", "method_label", "repeat", "fold", "seed",
                                        "test_accuracy", "test_f1", "test_macro_f1")} | {"label": labels[r["run_id"]]}
                 for r in records],
        "versions": {"torch": torch.__version__, "grad-cam": metadata.version("grad-cam")},
    }


def _compute(cfg: Experiment, output_dir: Path, options: Options, stage: Path) -> None:
    store = Store(output_dir)
    groups, records = _groups(cfg, store, options)
    labels = {run.spec.run_id: run.label for g in groups for run in g.runs}
    common = _common(cfg, output_dir, options, records, labels)
    map_parts = {"cams", "noise"} & set(options.parts)
    loc_rows, noise_rows, div_rows, cam_info, noise_figs, pca_figs = [], [], [], {}, {}, {}
    for group in _progress(groups, "explain", options, unit="backbone"):
        for run in group.runs:
            group.probs[run.spec.run_id] = predict(run.model, group.test.normalize(group.test.images), options.batch_size)
            if map_parts:
                group.targets[run.spec.run_id] = cam_target(run.model, run.spec.backbone, cfg.data.image_size)
        group.subset = eval_subset(len(group.test.labels), options.eval_images, options.seed)
        if "cams" in options.parts:
            rows, cam_info[group.backbone] = cam_part(group, options, stage)
            loc_rows += rows
        if "noise" in options.parts:
            rows = noise_part(group, options)
            noise_rows += rows
            noise_figs[group.backbone] = f"noise_{safe_name(group.backbone)}.png"
            figures.noise_curves(pd.DataFrame(rows), f"{group.backbone}: robustness to input noise (fold "
                                 f"{group.test.fold} test part; map stability on {len(group.subset)} images)",
                                 stage / noise_figs[group.backbone],
                                 f1="f1" if len(group.class_names) == 2 else "macro_f1")
        if "diversity" in options.parts:
            rows, pca_figs[group.backbone] = diversity_part(group, options, stage)
            div_rows += rows
        group.clean_maps.clear()
    eval_note = {"eval_images": int(options.eval_images), "eval_note": "test images used for map measures (0 = all)"}
    if "cams" in options.parts:
        _write_csv(stage / "localization.csv", loc_rows)
        _write_json(stage / "cams.json", common | eval_note | {
            "cams": list(options.cams), "top_fraction": TOP_FRACTION, "backbones": cam_info,
            "target": "the class each run predicts on the clean image",
        })
    if "noise" in options.parts:
        frame = _write_csv(stage / "noise.csv", noise_rows)
        _noise_summary(frame).to_csv(stage / "noise_summary.csv", index=False)
        _write_json(stage / "noise.json", common | eval_note | {
            "cams": list(options.cams), "figures": noise_figs, "top_fraction": TOP_FRACTION,
            "noise": {
                "gaussian": {"levels": options.levels()["gaussian"],
                             "definition": "x + N(0, sigma^2) per pixel and channel on [0, 1] pixels, clipped to [0, 1]"},
                "salt_pepper": {"levels": options.levels()["salt_pepper"],
                                "definition": "this fraction of pixels (all channels) set to 0 or 1 with equal odds"},
                "applied_before": "the training normalization (x - mean) / std of the run's fold",
                "seed": options.seed,
                "rng": "numpy default_rng([seed, kind index, round(level * 1e6)]): the same noisy images for every run",
            },
        })
    if "diversity" in options.parts:
        frame = _write_csv(stage / "diversity.csv", div_rows)
        figures.diversity_bars(frame[frame["run_id"] != ""], stage / "diversity.png")
        _write_json(stage / "diversity.json", common | {
            "features": div.FEATURES, "figures": pca_figs | {"bars": "diversity.png"},
            "measure": "entropy H of the normalized eigenvalues of the feature covariance (nats) and effective rank "
                       "exp(H), after Dubey et al. 2018; effective_rank_ratio = exp(H) / min(N - 1, D)",
        })


def _noise_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run, CAM method and noise kind: the means over the noisy levels (level > 0) and the value at the largest."""
    noisy = frame[frame["level"] > 0]
    keys = RUN_KEYS + ["cam", "noise"]
    metrics = ["accuracy", "f1", "macro_f1", "pearson", "iou_top20"]
    mean = noisy.groupby(keys, sort=False)[metrics].mean().add_prefix("mean_")
    worst = noisy.loc[noisy.groupby(keys, sort=False)["level"].idxmax()].set_index(keys)[metrics + ["level"]]
    worst = worst.add_prefix("at_max_")
    return mean.join(worst).reset_index()


def _publish(stage: Path, out_dir: Path) -> list[Path]:
    """Move the finished files into `out_dir`, each replacing its older version atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    moved = []
    for path in sorted(stage.iterdir()):
        os.replace(path, out_dir / path.name)
        moved.append(out_dir / path.name)
    return moved


def check_out_dir(out_dir: Path, cfg: Experiment) -> None:
    """--out is a folder (or new), outside the data folder, whose images the next run would train on."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {message_name(out_dir)}: exists and is not a folder; give a folder for the explain outputs")
    if cfg.data.root != "synthetic":
        data, out = Path(cfg.data.root).resolve(), out_dir.resolve()
        if out == data or data in out.parents:
            raise UserError(f"--out {message_name(out_dir)}: is inside the data folder {message_name(data)}, whose images "
                            "the next run would train on; give a folder outside it")


def explain(target: str | Path, options: Options, out_dir: Path | None = None) -> Path:
    """Compute the chosen parts for an experiment (file or output folder); returns the explain folder."""
    check_cam_methods(options.cams)
    if options.images < 1 or options.eval_images < 0 or options.batch_size < 1:
        raise UserError("--images and --batch-size must be >= 1 and --eval-images >= 0")
    for kind, levels in options.levels().items():
        if any(not 0.0 <= level <= 1.0 for level in levels):
            raise UserError(f"--{kind.replace('_', '-')} {' '.join(map(str, levels))}: levels must lie in [0, 1]")
    unknown = set(options.parts) - set(PARTS)
    if unknown or not options.parts:
        raise UserError(f"parts {sorted(unknown)}: allowed {', '.join(PARTS)}")
    cfg, output_dir = load_experiment(target)
    out_dir = Path(out_dir) if out_dir is not None else output_dir / "explain"
    check_out_dir(out_dir, cfg)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _compute(cfg, output_dir, options, stage)
        _publish(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    atomic_write_text(out_dir / "explain.md", write_markdown(out_dir))
    return out_dir


__all__ = ["PARTS", "Options", "choose_images", "eval_subset", "explain"]
