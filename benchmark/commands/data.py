"""`python -m benchmark data synthetic|montage`: the embedded synthetic dataset and a real-vs-synthetic montage."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmark.data import montage, synthetic
from benchmark.errors import UserError

NAME = "data"
HELP = "Synthetic solder-joint data: generate a dataset (synthetic) or a real-vs-synthetic montage (montage)."
REAL_DEFAULT = Path("..") / "shared" / "datasets" / "solder-joint-dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True
    gen = actions.add_parser(
        "synthetic",
        help="write a synthetic dataset: DIR/<class>/<class>_<i>.png plus SYNTHETIC.json",
        description="Write a synthetic solder-joint dataset (same size and PNG format for every class).",
    )
    gen.add_argument("--out", type=Path, required=True, help="output folder (replaced if it holds an older one)")
    gen.add_argument("--n", type=int, default=1000, help="number of images in total (default 1000)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    gen.add_argument("--normal-fraction", type=float, default=0.8, help="share of normal images (default 0.8)")
    gen.add_argument("--workers", type=int, default=None,
                     help="processes to render with (default: the usable CPU cores, one per 256 images at most)")
    mon = actions.add_parser(
        "montage",
        help="a PNG with a real row and a synthetic row per class",
        description="Montage: per class, a row of real crops above a row of synthetic ones, all tiles the same size.",
    )
    mon.add_argument("--real", type=Path, default=None,
                     help=f"real dataset folder (default {REAL_DEFAULT.as_posix()} when it exists)")
    mon.add_argument("--synthetic", type=Path, default=None,
                     help="synthetic dataset folder (default: generate a small one in a temp folder)")
    mon.add_argument("--per-class", type=int, default=8, help="tiles per row (default 8)")
    mon.add_argument("--tile", type=int, default=64, help="tile side in pixels, bicubic resize (default 64)")
    mon.add_argument("--seed", type=int, default=0, help="seed for picking images and generating (default 0)")
    mon.add_argument("--out", type=Path, required=True, help="output PNG file")


def _synthetic(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = synthetic.generate(args.out, n=args.n, seed=args.seed, size=args.size,
                             normal_fraction=args.normal_fraction, progress=True, workers=args.workers)
    elapsed = time.perf_counter() - start
    counts = synthetic.class_counts(args.n, args.normal_fraction)
    for cls, count in counts.items():
        print(f"{cls:20s} {count:7d}")
    print(f"{'total':20s} {args.n:7d}")
    print(f"wrote {out} ({args.size}x{args.size} px PNG) in {elapsed:.2f} s: {args.n / elapsed:.0f} images/s")
    return 0


def _real_dir(given: Path | None) -> Path | None:
    if given is not None:
        if not given.is_dir():
            raise UserError(f"--real {given} is not a folder")
        return given
    return REAL_DEFAULT if REAL_DEFAULT.is_dir() else None


def _montage(args: argparse.Namespace) -> int:
    real = _real_dir(args.real)
    if args.synthetic is not None and not args.synthetic.is_dir():
        raise UserError(f"--synthetic {args.synthetic} is not a folder")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out {args.out} must end in .png")
    if args.per_class < 1 or args.tile < 8:
        raise UserError(f"--per-class must be >= 1 and --tile >= 8, got {args.per_class} and {args.tile}")
    with tempfile.TemporaryDirectory(prefix="solderbench-montage-") as tmp:
        source = args.synthetic
        if source is None:
            source = synthetic.generate(
                Path(tmp) / "synthetic", n=len(synthetic.CLASSES) * args.per_class, seed=args.seed,
                normal_fraction=1.0 / len(synthetic.CLASSES), defect_weights={c: 1.0 for c in synthetic.CLASSES[1:]},
            )
        image = montage.build_montage(synthetic.CLASSES, source, real, per_class=args.per_class,
                                      tile=args.tile, seed=args.seed)
    montage.save_png(image, args.out)
    print(f"wrote {args.out} ({image.width}x{image.height} px; real: {real or 'none'}; synthetic: "
          f"{args.synthetic or 'generated'}; tiles {args.tile} px, bicubic)")
    return 0


def main(args: argparse.Namespace) -> int:
    return {"synthetic": _synthetic, "montage": _montage}[args.data_command](args)
