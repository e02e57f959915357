"""`python -m benchmark report`: tables, statistics, figures and index.html for one experiment (or for each of several,
then their performance tables side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.errors import UserError

NAME = "report"
HELP = "write paper-style tables, significance tests, figures and a self-contained index.html for an experiment"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="+", metavar="CONFIG.yaml|OUTPUT_DIR",
                        help="experiment file or its output folder (runs/<name>); several: one report each, then their "
                             "performance tables side by side")
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default: reports/<experiment name>; one experiment only)")
    parser.add_argument("--oracle", action="store_true", help="also show each grid's choice by test score (optimistic)")
    parser.add_argument(
        "--metric", action="append", default=None, metavar="NAME",
        help="test metric for the statistics and CD diagram, repeatable (default: accuracy and f1, + macro_f1 for >2 "
             "classes; accuracy and macro_f1 for >2 classes without data.positive)",
    )
    parser.add_argument("--no-figures", action="store_true", help="tables and statistics only (fast, e.g. mid-sweep)")
    parser.add_argument("--rope", type=float, default=1.0, metavar="PP",
                        help="region of practical equivalence of the verdicts, ± percentage points (default 1)")
    parser.add_argument("--decide", type=float, default=2.0, metavar="PP",
                        help="difference (percentage points) the 'what a decision costs' lines size for (default 2)")
    parser.add_argument("--select-by", default=None, metavar="VAL_METRIC",
                        help="inner-validation score that picks a grid's setting "
                             "(default: val_f1; val_macro_f1 for >2 classes without data.positive)")


def main(args: argparse.Namespace) -> int:
    import math

    from benchmark.report import build_report, default_out_dir
    from benchmark.report.decisions import DECISION_FILE
    from benchmark.report.load import resolve_output_dir

    if not (math.isfinite(args.rope) and 0 <= args.rope < 100):
        raise UserError(f"--rope {args.rope:g}: give the ± width in percentage points, 0 <= PP < 100")
    if not (math.isfinite(args.decide) and 0 < args.decide < 100):
        raise UserError(f"--decide {args.decide:g}: give a difference in percentage points, 0 < PP < 100")
    if args.out is not None and len(args.targets) > 1:
        raise UserError(f"--out names one report folder; with {len(args.targets)} experiments each report goes to "
                        "reports/<experiment name> (nothing written)")
    outputs = [resolve_output_dir(target) for target in args.targets]
    outs = [args.out or default_out_dir(output) for output in outputs]
    twice = [str(o) for o in outs if outs.count(o) > 1]
    if twice:
        raise UserError(f"two of the experiments have the same name, so both reports would go to {twice[0]}; report "
                        "them one at a time with --out (nothing written)")
    for output_dir, out_dir in zip(outputs, outs, strict=True):
        index = build_report(output_dir, out_dir, oracle=args.oracle, metrics=args.metric, select_by=args.select_by,
                             figures=not args.no_figures, rope_pp=args.rope, decide_pp=args.decide)
        decision = index.parent / "stats" / DECISION_FILE
        if decision.is_file():
            print("\n".join(line for line in decision.read_text().splitlines() if line))
        print(f"report: {index}")
    if len(outs) > 1:
        from benchmark.report.compare import side_by_side

        print("\n" + side_by_side(outs))
    return 0
