"""`python -m benchmark bench`: training and evaluation throughput here, and one epoch against the reference script."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.errors import UserError
from benchmark.experiment import AUGMENTATIONS, COMPILE_MODES, Train
from benchmark.numerics import MODES as NUMERICS

NAME = "bench"
HELP = "Measure training/evaluation speed here: real pipeline vs the model's ceiling, or one epoch vs the reference."
EVAL_BATCH_SIZE = Train.model_fields["eval_batch_size"].default
DEFAULTS = {False: ("resnet18", 64, ",".join(AUGMENTATIONS)), True: ("googlenet", 8, "none")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", help="registered backbone (default resnet18; googlenet with --reference-epoch)")
    parser.add_argument("--image-size", type=int, default=84, help="square input side in pixels (default 84)")
    parser.add_argument("--batch-size", type=int, help="training batch size (default 64; 8 with --reference-epoch)")
    parser.add_argument("--data", default="synthetic",
                        help="image folder with one sub-folder per class, or 'synthetic' (default)")
    parser.add_argument("--classes", choices=("binary", "folders"), default="binary",
                        help="binary: 'normal' vs every other folder (default); folders: one class per folder")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per path (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--augment", help=f"comma-separated of {', '.join(AUGMENTATIONS)}, or none "
                                          "(default all; none with --reference-epoch, as the reference had none)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="channels_last memory format (default on)")
    parser.add_argument("--amp", action="store_true", help="mixed precision (bf16 on CPU, fp16 on CUDA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES, default="default",
                        help="torch.compile mode with --compile (default: default; reduce-overhead uses CUDA graphs)")
    parser.add_argument("--threads", type=int,
                        help="torch.set_num_threads (default: 1 with portable numerics, else torch's choice)")
    parser.add_argument("--numerics", choices=NUMERICS, default=Train.model_fields["numerics"].default,
                        help="kernels' instruction set as in train.numerics (default %(default)s, what runs use): "
                             "portable caps ATen, oneDNN and MKL at AVX2; native uses the best this CPU has")
    parser.add_argument("--eval-batch-size", type=int, default=EVAL_BATCH_SIZE,
                        help=f"evaluation batch size (default {EVAL_BATCH_SIZE}, the config's train.eval_batch_size)")
    parser.add_argument("--reference-epoch", action="store_true",
                        help="time one epoch (train 2,370 + validate 508 images) the way the published script did "
                             "(ImageFolder + Resize + ToTensor, no workers, validation with autograd on) versus ours")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"{name} must be a positive integer, got {value}")


def _augment(text: str) -> tuple[str, ...]:
    if text == "none":
        return ()
    ops = tuple(op.strip() for op in text.split(",") if op.strip())
    unknown = [op for op in ops if op not in AUGMENTATIONS]
    if unknown:
        raise UserError(f"--augment {text}: unknown {', '.join(unknown)}; allowed: {', '.join(AUGMENTATIONS)} or none")
    return ops


def main(args: argparse.Namespace) -> int:
    import torch

    from benchmark import numerics
    from benchmark.bench import BenchOptions, format_table, run_bench, write_json

    for name in ("image_size", "batch_size", "steps", "threads", "eval_batch_size"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    if args.warmup < 0:
        raise UserError(f"--warmup must be >= 0, got {args.warmup}")
    backbone, batch_size, augment = DEFAULTS[args.reference_epoch]
    try:
        environment = numerics.enter(args.numerics, args.threads)
    except numerics.NotApplicable as exc:
        raise UserError(f"--numerics {args.numerics}: cannot take effect in this process ({exc})") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = BenchOptions(
        backbone=args.backbone or backbone,
        image_size=args.image_size,
        batch_size=args.batch_size or batch_size,
        data=args.data,
        classes=args.classes,
        augment=_augment(args.augment or augment),
        device=args.device,
        channels_last=args.channels_last,
        amp=args.amp,
        compile=args.compile,
        compile_mode=args.compile_mode,
        eval_batch_size=args.eval_batch_size,
    )
    result = run_bench(opts, steps=args.steps, warmup=args.warmup, reference_epoch=args.reference_epoch,
                       show_progress=not args.quiet)
    result["environment"] = environment
    print(format_table(result))
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
