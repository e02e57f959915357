"""`python -m benchmark status CONFIG|OUTPUT_DIR`: how many runs are done, failed, running (and where), interrupted
(with the epoch they resume after) and pending."""

from __future__ import annotations

import argparse
from collections import Counter

from benchmark.config import load_config

NAME = "status"
HELP = "count done / failed / running / pending runs of an experiment; list the failed and running ones"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml|OUTPUT_DIR",
                        help="experiment file, or its output folder (runs/<name>: the experiment as it ran, --set included)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="the overrides the run was given (not needed with the output folder)")


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
    saved = {run.run_id: sweep.store.run(run.run_id).saved_epoch() for run in runs
             if status[run.run_id] in ("pending", "running")}
    resumes = [run for run in runs if status[run.run_id] == "pending" and saved.get(run.run_id)]
    counts = Counter(status.values())
    undrawn = len(trials.undrawn) if trials else 0
    interrupted = f" (of which {len(resumes)} interrupted, resuming from their last epoch)" if resumes else ""
    print(f"{cfg.name}: {len(runs) + undrawn} runs: {counts['done']} done, {counts['failed']} failed, "
          f"{counts['running']} running, {counts['pending'] + undrawn} pending{interrupted}  ({cfg.run.output})")
    if trials:
        print(f"  of which {len(trials.known) + undrawn} tuning trials ({tuning.trials} per method and fold; "
              f"{undrawn} not drawn yet)")
    planned = {run.run_id for run in runs}
    superseded = [r for r in sweep.store.records(quiet=True) if r.get("run_id") not in planned]
    if superseded:
        print(f"  {len(superseded)} superseded record(s) of an earlier config stay on disk, left out of the tables")
    epochs = cfg.train.epochs
    for run in runs:
        where = f"{run.run_id} {run.method} {run.backbone} fold {run.fold}"
        if status[run.run_id] == "failed":
            print(f"  failed  {where}: {sweep.store.read_record(run.run_id).get('error', '')}")
        elif status[run.run_id] == "running":
            owner = owners[run.run_id]
            at = f", epoch {saved[run.run_id]} of {epochs} saved" if saved.get(run.run_id) else ""
            print(f"  running {where}: pid {owner.get('pid')} on {owner.get('host')}, "
                  f"last heartbeat {owner['heartbeat_age_s']:.0f} s ago{at}")
        elif run in resumes:
            print(f"  resumes {where}: interrupted after epoch {saved[run.run_id]} of {epochs}; the next `run` "
                  f"continues at epoch {saved[run.run_id] + 1}")
    return 0
