"""`python -m benchmark verify TARGET`: re-train recorded runs in a scratch folder and compare their numbers."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from benchmark.errors import UserError

NAME = "verify"
HELP = "re-train a sample of recorded runs in a scratch folder and compare every metric with its record"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="experiment YAML, or an output folder holding config.resolved.yaml")
    parser.add_argument("--runs", type=int, default=3, metavar="N",
                        help="how many recorded runs to re-train, drawn at random (seeded; default 3)")
    parser.add_argument("--only", nargs="+", default=[], metavar="KEY=VALUE",
                        help="re-train these runs instead, e.g. --only method=ce fold=0, or run_id=ID")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random sample (default 0)")
    parser.add_argument("--tolerance", type=float, default=None, metavar="X",
                        help="largest difference that agrees (default: 0, exact, for runs made with portable "
                             "numerics; 0.02 otherwise)")
    parser.add_argument("--scratch", type=Path, default=None, metavar="DIR",
                        help="where to re-train (a new or empty folder; default: a new temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set data.root=/path/to/data (not what changes a run id)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from benchmark.config import load_config
    from benchmark.plan import parse_only
    from benchmark.verify import verify

    if args.runs < 1:
        raise UserError(f"verify --runs {args.runs}: need an integer >= 1")
    if args.tolerance is not None and not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise UserError(f"verify --tolerance {args.tolerance}: need a number >= 0")
    cfg = load_config(args.target, args.overrides)
    result = verify(cfg, args.runs, parse_only(args.only), args.scratch, args.tolerance, args.seed,
                    show_progress=not args.quiet)
    table = result.table
    shown = table.assign(
        recorded=table["recorded"].map(_number), new=table["new"].map(_number),
        difference=table["difference"].map(lambda v: "" if math.isnan(v) else f"{v:+.3g}"),
        agrees=table["agrees"].map({True: "yes", False: "NO"}),
    )
    print(shown.to_string(index=False))
    (result.scratch / "verify.csv").write_text(table.to_csv(index=False))
    runs = table["run_id"].nunique()
    bad = table[~table["agrees"]]
    rule = "exactly" if result.tolerance == 0 else f"within ±{result.tolerance:g}"
    if bad.empty:
        print(f"verify: {runs} runs agree with their records {rule} on every metric "
              f"({len(table)} values; re-trained in {result.scratch})")
        return 0
    print(f"verify: {bad['run_id'].nunique()} of {runs} runs differ from their records ({len(bad)} of {len(table)} "
          f"values not {rule}; re-trained in {result.scratch}, table in verify.csv)", file=sys.stderr)
    return 1


def _number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))
