"""`python -m benchmark explain`: activation maps, noise robustness and feature diversity of trained runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.explain.defaults import CAM_NAMES, DEFAULT_CAMS, DEFAULT_LEVELS, PARTS

NAME = "explain"
HELP = "class activation maps, their robustness to noise, and feature diversity of an experiment's trained runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="CONFIG.yaml|OUTPUT_DIR", help="experiment file or its output folder (runs/<name>)")
    parser.add_argument("--runs", nargs="+", default=None, metavar="RUN_ID",
                        help="runs to explain (default: each method setting x backbone at fold 0, repeat 0, first seed)")
    parser.add_argument("--images", type=int, default=8, metavar="N", help="test images in the CAM figures (default 8)")
    parser.add_argument("--cam", dest="cams", nargs="+", default=list(DEFAULT_CAMS), metavar="METHOD",
                        help=f"CAM methods (default: {' '.join(DEFAULT_CAMS)}); allowed: {', '.join(CAM_NAMES)}")
    parser.add_argument("--gaussian", nargs="+", type=float, default=list(DEFAULT_LEVELS["gaussian"]), metavar="SIGMA",
                        help="Gaussian noise std on [0, 1] pixels (default: 0 0.05 0.1 0.2)")
    parser.add_argument("--salt-pepper", nargs="+", type=float, default=list(DEFAULT_LEVELS["salt_pepper"]),
                        metavar="FRACTION", help="salt-and-pepper pixel fractions (default: 0 0.02 0.05 0.1)")
    parser.add_argument("--eval-images", type=int, default=64, metavar="N",
                        help="test images for the map measures (stability, ROAD); 0 = all (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image choice and of the noise (default 0)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward/backward pass (default 32)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--diversity-only", action="store_true", help="only the feature-diversity part (fast)")
    only.add_argument("--no-noise", action="store_true", help="skip the noise part")
    parser.add_argument("--out", type=Path, default=None, help="folder for the outputs (default: OUTPUT_DIR/explain)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from benchmark.explain.build import Options, explain
    from benchmark.explain.markdown import FLAT_REASON, flat_failures

    parts = ("diversity",) if args.diversity_only else tuple(p for p in PARTS if not (args.no_noise and p == "noise"))
    options = Options(
        runs=args.runs, images=args.images, cams=tuple(args.cams), gaussian=tuple(args.gaussian),
        salt_pepper=tuple(args.salt_pepper), eval_images=args.eval_images, seed=args.seed, parts=parts,
        batch_size=args.batch_size, show_progress=not args.quiet,
    )
    folder = explain(args.target, options, args.out)
    print(f"explain: {folder / 'explain.md'}")
    failed = flat_failures(folder) if "cams" in parts else []
    if failed:
        print(f"explain: failed for {len(failed)} map(s): every map of {', '.join(failed)} is flat {FLAT_REASON}, so "
              "they localize nothing; try a larger data.image_size or another backbone", file=sys.stderr)
        return 1
    return 0
