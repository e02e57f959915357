"""`python -m benchmark audit CONFIG|FOLDER`: does the data let a model cheat?"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.audit.settings import NEAR_THRESHOLD, TREES
from benchmark.data.images import RESIZE_POLICIES
from benchmark.errors import UserError, safe_name

if TYPE_CHECKING:
    from benchmark.data.folders import FileList
    from benchmark.protocol import Fold

NAME = "audit"
HELP = "Check a dataset before trusting a benchmark: bad files, duplicates, train/test leakage, shortcuts."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="an experiment file (.yaml) or its output folder (runs/<name>), or a folder with "
                        "one sub-folder per class")
    parser.add_argument("--out", type=Path, help="where to write audit.json and audit.md "
                        "(default: the experiment's run.output; for a folder: ./audit-<folder name>/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="experiment override, e.g. --set data.resize.policy=via --set data.resize.via=24")
    folder = parser.add_argument_group("folder mode (ignored for an experiment file; use --set there)")
    folder.add_argument("--image-size", type=int, default=84, help="model input size in px (default 84)")
    folder.add_argument("--resize", choices=RESIZE_POLICIES, default="stretch", help="resize policy (default stretch)")
    folder.add_argument("--via", type=int, help="intermediate size for --resize via, e.g. 24")
    folder.add_argument("--merge", action="append", default=[], metavar="CLASS=FOLDER,FOLDER",
                        help="make one class of several folders, e.g. defective=short,shifted_component")
    folder.add_argument("--positive", help="class whose F1 is reported for a two-class task (default: the second)")
    folder.add_argument("--folds", type=int, default=5, help="stratified k-fold (default 5)")
    folder.add_argument("--seed", type=int, default=42, help="fold seed (default 42)")
    folder.add_argument("--group-by", help=r"regex on file names keeping groups in one fold, e.g. '(normal_b\d)'")
    parser.add_argument("--near-threshold", type=int, default=NEAR_THRESHOLD,
                        help=f"near-duplicate: at most this many of 64 perceptual-hash bits differ (default {NEAR_THRESHOLD})")
    parser.add_argument("--trees", type=int, default=TREES, help=f"trees of the shortcut check's random forest (default {TREES})")


def _merge_mapping(folder: Path, merges: list[str]) -> dict[str, list[str]] | None:
    """--merge options to a data.classes mapping; unmerged sub-folders stay classes of their own."""
    if not merges:
        return None
    merged: dict[str, list[str]] = {}
    for text in merges:
        name, sep, folders = text.partition("=")
        parts = [f.strip() for f in folders.split(",") if f.strip()]
        if not sep or not name.strip() or not parts:
            raise UserError(f"--merge {text!r}: expected CLASS=FOLDER,FOLDER,... e.g. defective=short,shifted_component")
        merged[name.strip()] = parts
    used = [f for folders in merged.values() for f in folders]
    twice = sorted({f for f in used if used.count(f) > 1})
    if twice:
        raise UserError(f"--merge: folder(s) {', '.join(twice)} named in more than one class")
    others = sorted(e.name for e in folder.iterdir() if e.is_dir() and not e.name.startswith(".") and e.name not in used)
    mapping = {name: [name] for name in others if name not in merged}
    mapping.update(merged)
    return dict(sorted(mapping.items()))


def _folder_inputs(args: argparse.Namespace) -> tuple[FileList, list[Fold], dict, Path]:
    import numpy as np
    from pydantic import ValidationError

    from benchmark.config_errors import error_text
    from benchmark.data.folders import scan
    from benchmark.protocol import ProtocolSpec, make_folds

    folder = Path(args.target)
    if args.resize == "via" and not args.via:
        raise UserError("--resize via needs --via N (the common small size, e.g. --via 24)")
    if args.via and args.resize != "via":
        raise UserError("--via is used only with --resize via")
    if args.image_size < 8 or (args.via is not None and args.via < 4):
        raise UserError("--image-size must be at least 8 and --via at least 4")
    if args.folds < 2:
        raise UserError(f"--folds {args.folds}: needs at least 2")
    if args.set:
        raise UserError("--set applies to an experiment file; for a folder use --resize/--via/--image-size")
    files = scan(folder, "folders", _merge_mapping(folder, args.merge), where=str(folder))
    if args.positive is not None and args.positive not in files.class_names:
        raise UserError(f"--positive {args.positive!r} is not a class; classes: {', '.join(files.class_names)}")
    counts = np.bincount(files.labels, minlength=len(files.class_names))
    small = [f"{n} ({c})" for n, c in zip(files.class_names, counts, strict=True) if c < args.folds]
    if small:
        raise UserError(f"class(es) {', '.join(small)} have fewer images than --folds={args.folds}; lower --folds")
    try:
        spec = ProtocolSpec(folds=args.folds, seed=args.seed, group_by=args.group_by)
    except ValidationError as exc:
        raise UserError(f"--folds/--seed/--group-by: {error_text(exc, ProtocolSpec)}") from None
    folds = make_folds(files, spec)
    settings = {"image_size": args.image_size, "resize_policy": args.resize, "via": args.via, "positive": args.positive,
                "group_by": args.group_by}
    return files, folds, settings, Path.cwd() / f"audit-{folder.resolve().name}"


def _config_inputs(args: argparse.Namespace) -> tuple[FileList, list[Fold], dict, Path]:
    from benchmark.config import load_config
    from benchmark.dataset import prepare

    cfg = load_config(args.target, args.set)
    data = cfg.data
    prepared = prepare(cfg.replace(data=data.model_copy(update={"on_bad_file": "skip"})))
    settings = {
        "image_size": data.image_size,
        "resize_policy": data.resize.policy,
        "via": data.resize.via,
        "positive": prepared.class_names[prepared.positive] if len(prepared.class_names) == 2 else data.positive,
        "group_by": cfg.protocol.group_by,
        "fixed_split": cfg.protocol.kind == "fixed",
    }
    return prepared.files, prepared.folds, settings, Path(cfg.run.output)


def main(args: argparse.Namespace) -> int:
    from benchmark.audit import render_summary, run_audit, save_audit
    from benchmark.config import resolved_config

    target = Path(args.target)
    if target.is_dir() and resolved_config(target) is None:
        files, folds, settings, default_out = _folder_inputs(args)
    elif target.is_file() or target.is_dir():
        files, folds, settings, default_out = _config_inputs(args)
    else:
        raise UserError(f"audit: {target} does not exist; give an experiment file (.yaml) or a folder of class folders")
    if args.near_threshold < 0 or args.near_threshold > 64:
        raise UserError(f"--near-threshold {args.near_threshold}: allowed 0..64")
    if args.trees < 1:
        raise UserError(f"--trees {args.trees}: needs at least 1")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {safe_name(args.out)}: exists and is not a folder; give a folder for audit.json and audit.md")
    result = run_audit(files, folds, near_threshold=args.near_threshold, trees=args.trees, **settings)
    json_path, md_path = save_audit(result, args.out or default_out)
    print(render_summary(result))
    print(f"\nwrote {json_path} and {md_path}")
    return 0
