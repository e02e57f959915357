"""`python -m benchmark run CONFIG`: run every pending (method × backbone × fold × seed) of an experiment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.config import load_config
from benchmark.experiment import Experiment

NAME = "run"
HELP = "run an experiment (skips finished runs, resumes interrupted ones)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml|OUTPUT_DIR",
                        help="experiment file, e.g. experiments/quick.yaml, or its output folder (runs/<name>)")
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
    from benchmark import numerics
    from benchmark.plan import parse_only
    from benchmark.runner import run_sweep

    cfg = load_config(args.config, args.overrides)
    numerics.prepare_environment(cfg.train.numerics, cfg.train.threads)  # before torch's first kernel
    only = parse_only(args.only)
    if args.dry_run:
        return _dry_run(cfg, only, args)
    counts = run_sweep(cfg, only=only, retry_failed=args.retry_failed, show_progress=not args.quiet,
                       eta=not args.quiet)
    print(
        f"{cfg.name}: {counts['done']} trained, {counts['failed']} failed, {counts['skipped']} already finished"
        + (f", {counts['busy']} not run (held by another process, or their worker stopped: run again to finish them)"
           if counts["busy"] else "")
        + f"; wall time {counts['wall_time_s']:.1f} s, peak memory {counts['peak_rss_mib']:.0f} MiB; "
        f"results: {cfg.run.output}/results.csv"
    )
    return 0


def _dry_run(cfg: Experiment, only: dict, args: argparse.Namespace) -> int:
    """Print every run with its status (tuning trials after the fixed runs), the counts, and the cost estimate."""
    from benchmark.design import plan_warnings
    from benchmark.estimate import pending_estimate
    from benchmark.plan import check_only, select
    from benchmark.runner import open_sweep
    from benchmark.sweep import warn_single_class_f1
    from benchmark.tune.studies import UNDRAWN, frontier, resolve_tuning

    sweep = open_sweep(cfg, decode_images=False)
    cfg = sweep.cfg  # protocol.select_by resolved for the task
    warn_single_class_f1(cfg, sweep.prepared.class_names)
    tuning = resolve_tuning(cfg, sweep.prepared.class_names)
    trials = frontier(sweep, tuning, args.retry_failed) if tuning else None
    check_only(sweep.runs + (trials.known if trials else []), only)
    runs = select(sweep.runs, only)
    known = select(trials.known, only) if trials else []
    undrawn = select(trials.undrawn, only) if trials else []
    for run in runs + known + undrawn:
        later = run.run_id == UNDRAWN
        params = "values drawn later" if later else ", ".join(f"{k}={v}" for k, v in run.method_params.items())
        status = "later" if later else sweep.status_of(run)
        trial = "" if run.trial is None else f" trial={run.trial}"
        print(f"[{status:>7}] {run.run_id:<12}  {run.method}({params})  {run.backbone}  "
              f"repeat={run.repeat} fold={run.fold} seed={run.seed}{trial}")
    line = f"{len(runs)} runs"
    if tuning:
        line += (f" + {len(known) + len(undrawn)} tuning trial runs ({tuning.trials} trials per method and fold, "
                 f"{len(undrawn)} drawn once the trials before them finish)")
    print(line, file=sys.stderr)
    for warning in plan_warnings(cfg, sweep.prepared.folds, [r.row() for r in sweep.store.current_records()[0]]):
        print(f"design warning: {warning}", file=sys.stderr)
    run_s = None
    if not args.no_estimate:
        table, run_s = pending_estimate(cfg, runs, args.retry_failed, known, undrawn)
        print(table, file=sys.stderr)
    for line in _decision_lines(cfg, len(sweep.runs), run_s):
        print(line, file=sys.stderr)
    return 0


def _decision_lines(cfg: Experiment, planned: int, run_s: float | None) -> list[str]:
    """What the planned design can decide, from the variance of the results already in the output folder (none
    there: nothing)."""
    from benchmark.errors import UserError
    from benchmark.report.decisions import decisions_for_output
    from benchmark.report.power import Design

    output = Path(cfg.run.output)
    if cfg.protocol.kind != "kfold" or not (output / "runs").is_dir():
        return []
    design = Design(cfg.protocol.folds, cfg.protocol.repeats, len(cfg.seeds))
    try:
        lines = decisions_for_output(output, design, planned / (design.blocks * design.seeds), run_s)
    except UserError:
        return []
    if not lines:
        return []
    return [f"what this design can decide (variance measured on the results in {cfg.run.output}):", *lines]
