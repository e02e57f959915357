"""`python -m benchmark status CONFIG`: how many runs are done, failed and pending."""

from __future__ import annotations

import argparse
from collections import Counter

from benchmark.config import load_config

NAME = "status"
HELP = "count done / failed / pending runs of an experiment"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def main(args: argparse.Namespace) -> int:
    from benchmark.runner import open_sweep

    cfg = load_config(args.config, args.overrides)
    sweep = open_sweep(cfg, decode_images=False)
    counts = Counter(sweep.status_of(run) for run in sweep.runs)
    print(f"{cfg['name']}: {len(sweep.runs)} runs: {counts['done']} done, {counts['failed']} failed, "
          f"{counts['pending']} pending  ({cfg['run']['output']})")
    for run in sweep.runs:
        if sweep.status_of(run) == "failed":
            print(f"  failed {run.run_id} {run.method} {run.backbone} fold {run.fold}: "
                  f"{sweep.store.read_record(run.run_id).get('error', '')}")
    return 0
