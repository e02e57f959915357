"""`python -m benchmark run CONFIG`: run every pending (method × backbone × fold × seed) of an experiment."""

from __future__ import annotations

import argparse
import sys

from benchmark.config import load_config

NAME = "run"
HELP = "run an experiment (skips finished runs, resumes interrupted ones)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML, e.g. experiments/quick.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.epochs=10 (repeatable)")
    parser.add_argument("--only", nargs="+", default=[], metavar="KEY=VALUE",
                        help="restrict to runs matching, e.g. --only method=alpha_js backbone=resnet18 fold=0")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the run list with done/pending marks and the estimated cost here, and exit")
    parser.add_argument("--no-estimate", action="store_true", help="with --dry-run: skip the timing probe")
    parser.add_argument("--retry-failed", action="store_true", help="also re-run runs recorded as failed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from benchmark.plan import check_only, parse_only, select
    from benchmark.runner import open_sweep, run_sweep

    cfg = load_config(args.config, args.overrides)
    only = parse_only(args.only)
    if args.dry_run:
        sweep = open_sweep(cfg, decode_images=False)
        check_only(sweep.runs, only)
        runs = select(sweep.runs, only)
        for run in runs:
            params = ", ".join(f"{k}={v}" for k, v in run.method_params.items())
            print(f"[{sweep.status_of(run):>7}] {run.run_id}  {run.method}({params})  {run.backbone}  "
                  f"repeat={run.repeat} fold={run.fold} seed={run.seed}")
        print(f"{len(runs)} runs", file=sys.stderr)
        if not args.no_estimate:
            print(_estimate(cfg, runs, args.retry_failed), file=sys.stderr)
        return 0
    counts = run_sweep(cfg, only=only, retry_failed=args.retry_failed, show_progress=not args.quiet)
    print(
        f"{cfg['name']}: {counts['done']} trained, {counts['failed']} failed, {counts['skipped']} already finished"
        + (f", {counts['busy']} taken by another process" if counts["busy"] else "")
        + f"; wall time {counts['wall_time_s']:.1f} s, peak memory {counts['peak_rss_mib']:.0f} MiB; "
        f"results: {cfg['run']['output']}/results.csv"
    )
    return 0


def _estimate(cfg: dict, runs: list, retry_failed: bool) -> str:
    """The cost table of the pending runs among `runs` (decodes the images and times a few steps per model)."""
    from benchmark.estimate import cost_table, estimate
    from benchmark.executors.local import resolve_workers
    from benchmark.runner import check_sweep, open_sweep, pending_runs

    sweep = open_sweep(cfg)
    device = check_sweep(sweep)
    selected = {run.run_id for run in runs}
    planned = [run for run in sweep.runs if run.run_id in selected]
    pending = [run for run in pending_runs(sweep, retry_failed) if run.run_id in selected]
    if device is None:
        from benchmark.train import resolve_device

        device, workers = resolve_device("auto"), 1
    else:
        workers = resolve_workers(cfg["run"]["workers"], cfg["train"]["threads"], len(pending))
    costs = estimate(sweep, planned, pending, device)
    return cost_table(costs, workers, device, cfg["train"]["early_stopping"] is not None)
