"""`python -m benchmark init DATA_DIR [-o FILE]`: a commented experiment file drafted from an image folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.errors import UserError, unknown_name_hint

NAME = "init"
HELP = "draft a commented experiment file from an image folder (one sub-folder per class): scan, quick audit, cost"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR",
                        help="a folder with one sub-folder of images per class (or train/ validation/ test/ with them)")
    parser.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                        help="the experiment file to write (default: ./<folder name>.yaml); never overwritten; its name "
                             "(without .yaml) names the experiment: runs/<name>, reports/<name>")
    parser.add_argument("--backbone", default="resnet18", metavar="NAME",
                        help="the backbone to write (default resnet18, the paper's; small_cnn trains ~10x faster on a CPU)")
    parser.add_argument("--no-estimate", action="store_true", help="skip the timing probe (the cost comment)")


def main(args: argparse.Namespace) -> int:
    from benchmark.starter import draft, experiment_name, price, render, write_new

    path = args.output or Path(f"{experiment_name(args.data_dir)}.yaml")
    if path.exists():
        raise UserError(f"init: {path} exists; choose another file with -o (nothing written)")
    if not path.parent.is_dir():
        raise UserError(f"init: -o {path}: folder {path.parent} does not exist (nothing written)")
    import methods

    if not args.backbone.startswith("timm:") and args.backbone not in methods.list_backbones("*"):
        raise UserError(f"init: --backbone {args.backbone!r}: {unknown_name_hint(args.backbone, methods.list_backbones('*'))}")
    found = draft(args.data_dir, args.backbone, experiment_name(path.with_suffix("")) if args.output else None)
    cost, warnings = price(render(found, "", [], args.backbone), not args.no_estimate)
    write_new(path, render(found, cost, warnings, args.backbone))
    folds = f"{found.folds} folds" if found.layout == "folders" else "its own train/validation/test split"
    print(f"wrote {path}: {len(found.files.files)} images, {len(found.counts)} classes, {folds}, "
          f"select_by {found.select_by}, image_size {found.image_size}"
          + (f", resize via {found.via}" if found.via else "") + (f", group_by {found.group_by}" if found.group_by else ""))
    for line in cost.splitlines()[-1:]:
        print(f"cost here: {line}")
    if not args.no_estimate and args.backbone != "small_cnn":
        print("too long for a first look? draft another file with --backbone small_cnn (a CPU-sized CNN), or lower "
              "train.epochs in this one")
    print(f"next: python -m benchmark run {path} && python -m benchmark report {path}")
    return 0
