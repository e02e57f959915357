"""`run.workers`: several worker processes share one sweep through the leases, give the same table as one process,
die with a killed parent, and resume like a single process does."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pandas as pd

from benchmark.executors.local import resolve_workers
from tests.test_crash_safety import (  # noqa: F401 - fixtures
    _assert_clean_and_equal,
    _experiment,
    _start,
    forkserver,
    reference,
)

WORKERS = ["--set", "run.workers=2"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_resolve_workers():
    cores = len(os.sched_getaffinity(0))
    assert resolve_workers("auto", 1, 100) == cores
    assert resolve_workers("auto", None, 100) == 1
    assert resolve_workers(4, 1, 3) == 3
    assert resolve_workers("auto", 1, 0) == 1


def test_two_workers_give_the_single_process_table(tmp_path, image_folder, reference, forkserver):  # noqa: F811
    experiment = _experiment(tmp_path, image_folder, "two")
    log = tmp_path / "two.log"
    proc = _start(forkserver, ["run", str(experiment), "--quiet", *WORKERS], log)
    proc.join(180)
    assert proc.exitcode == 0, log.read_text()
    assert "in 2 worker processes" in log.read_text()
    assert f"{len(reference)} trained" in log.read_text()
    _assert_clean_and_equal(experiment.parent / "out", reference)
    worker_logs = "".join(p.read_text() for p in (experiment.parent / "out" / "logs").glob("worker-*.log"))
    for run_id in reference["run_id"]:  # each run: a start line, epoch lines and an end line in some worker's log
        assert re.search(rf"{run_id} \S+ fold \d+: epoch 1/\d+ train_loss", worker_logs), run_id
    assert worker_logs.count(": started") == len(reference) and worker_logs.count(": done in ") == len(reference)


def test_killed_parent_takes_its_workers_along_and_rerun_completes(tmp_path, image_folder, reference,  # noqa: F811
                                                                    forkserver):  # noqa: F811
    experiment = _experiment(tmp_path, image_folder, "killed")
    out, log = experiment.parent / "out", tmp_path / "killed.log"
    proc = _start(forkserver, ["run", str(experiment), "--quiet", *WORKERS], log)
    deadline, workers = time.time() + 120, set()
    while time.time() < deadline and not workers:
        for lease in out.glob("runs/*/lease.json"):
            try:
                workers.add(json.loads(lease.read_text())["pid"])
            except (ValueError, KeyError, OSError):
                continue
        time.sleep(0.05)
    assert workers and proc.pid not in workers, log.read_text()
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
    done = len(list(out.glob("runs/*/record.json")))
    assert done < len(reference)
    rerun = _start(forkserver, ["run", str(experiment), "--quiet", *WORKERS], log)
    rerun.join(180)
    assert rerun.exitcode == 0, log.read_text()
    _assert_clean_and_equal(out, reference)


def test_two_processes_with_two_workers_each_train_each_run_once(tmp_path, image_folder, reference,  # noqa: F811
                                                                 forkserver):  # noqa: F811
    experiment = _experiment(tmp_path, image_folder, "shared")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_start(forkserver, ["run", str(experiment), "--quiet", *WORKERS], log) for log in logs]
    for proc in procs:
        proc.join(240)
    assert [p.exitcode for p in procs] == [0, 0], [log.read_text() for log in logs]
    trained = [int(log.read_text().split(" trained")[0].rsplit(" ", 1)[-1]) for log in logs]
    assert sum(trained) == len(reference)
    _assert_clean_and_equal(experiment.parent / "out", reference)
    assert len(pd.read_csv(experiment.parent / "out" / "results.csv")) == len(reference)
