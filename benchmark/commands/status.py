"""`python -m benchmark status CONFIG`: how many runs are done, failed, running (and where) and pending."""

from __future__ import annotations

import argparse
from collections import Counter

from benchmark.config import load_config

NAME = "status"
HELP = "count done / failed / running / pending runs of an experiment; list the failed and running ones"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def main(args: argparse.Namespace) -> int:
    from benchmark.rundir import warn_damaged
    from benchmark.runner import open_sweep
    from benchmark.tune.studies import frontier, resolve_tuning

    cfg = load_config(args.config, args.overrides)
    sweep = open_sweep(cfg, decode_images=False)
    for path, problem in sweep.store.damaged():
        warn_damaged(path, problem)
    tuning = resolve_tuning(cfg, sweep.prepared.class_names)
    trials = frontier(sweep, tuning) if tuning else None
    runs = sweep.runs + (trials.known if trials else [])
    status = {run.run_id: sweep.status_of(run) for run in runs}
    owners = {run.run_id: sweep.store.lease_owner(run.run_id) for run in runs if status[run.run_id] == "pending"}
    status.update({run_id: "running" for run_id, owner in owners.items() if owner is not None})
    counts = Counter(status.values())
    undrawn = len(trials.undrawn) if trials else 0
    print(f"{cfg.name}: {len(runs) + undrawn} runs: {counts['done']} done, {counts['failed']} failed, "
          f"{counts['running']} running, {counts['pending'] + undrawn} pending  ({cfg.run.output})")
    if trials:
        print(f"  of which {len(trials.known) + undrawn} tuning trials ({tuning.trials} per method and fold; "
              f"{undrawn} not drawn yet)")
    planned = {run.run_id for run in runs}
    superseded = [r for r in sweep.store.records(quiet=True) if r.get("run_id") not in planned]
    if superseded:
        print(f"  {len(superseded)} superseded record(s) of an earlier config stay on disk, left out of the tables")
    for run in runs:
        where = f"{run.run_id} {run.method} {run.backbone} fold {run.fold}"
        if status[run.run_id] == "failed":
            print(f"  failed  {where}: {sweep.store.read_record(run.run_id).get('error', '')}")
        elif status[run.run_id] == "running":
            owner = owners[run.run_id]
            print(f"  running {where}: pid {owner.get('pid')} on {owner.get('host')}, "
                  f"last heartbeat {owner['heartbeat_age_s']:.0f} s ago")
    return 0
