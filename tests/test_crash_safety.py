"""Crash safety: `run` killed with SIGKILL at many points and run again gives the uninterrupted table; two `run`
processes on one experiment share the work; leases of dead owners are taken over; checkpoints load weights_only.

The `run` processes are real processes forked from a forkserver that has imported the benchmark once (a fresh
interpreter per process would spend most of the test importing torch); each executes `benchmark.cli.main`.
"""

from __future__ import annotations

import ast
import errno
import json
import multiprocessing
import os
import signal
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from benchmark.config import load_config
from benchmark.runner import run_sweep
from benchmark.store import CRASH_ENV, Store, load_results
from tests.conftest import make_image_folder, write_config

REPO = Path(__file__).resolve().parent.parent
EPOCHS = 3
IMAGES = {"normal": 24, "defective": 12}
# Kill points, in the order the chained processes hit them (WHERE:N = the N-th time this process gets there).
KILL_POINTS = [
    "write:config.resolved.yaml:1",  # before anything is trained
    "batch:3",                       # mid-epoch (epoch 2 of the first run)
    "checkpoint:3",                  # a checkpoint written to its temp file, not yet renamed
    "heartbeat:2",                   # right after an epoch checkpoint
    "write:epochs.csv:1",            # the run's history written to a temp file
    "write:record.json:1",           # the record written to a temp file, not yet renamed
    "recorded:1",                    # the record in place, lease and last.pt not yet cleaned up
    "write:results.csv:1",           # during the table rebuild
    "lease:1",                       # just after taking a lease (the stale lease must be taken over)
]
PROVENANCE = {"wall_time_s", "finished_at", "git_commit", "git_dirty", "versions", "device"}


def _cli(argv: list[str], env: dict[str, str], log: str) -> None:
    """Child process body: `python -m benchmark ARGV` with extra environment, output to `log`."""
    from benchmark.cli import main

    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = main(argv)
    os._exit(code)


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["benchmark.cli", "benchmark.runner", __name__])
    return ctx


def _start(ctx, argv: list[str], log: Path, **env: str):
    env = {"SOLDERBENCH_CACHE": os.environ["SOLDERBENCH_CACHE"], **env}
    proc = ctx.Process(target=_cli, args=(argv, env, str(log)))
    proc.start()
    return proc


def _experiment(tmp_path: Path, image_folder: Path, name: str) -> Path:
    return write_config(tmp_path / name / "exp.yaml", image_folder,
                        methods=["ce", {"name": "alpha_js", "alpha": 0.5}],
                        protocol={"folds": 2, "val_fraction": 0.25, "seed": 1}, train={"epochs": EPOCHS, "threads": 1},
                        run={"output": str(tmp_path / name / "out"), "device": "cpu"})


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in table if c in PROVENANCE]).sort_values("run_id").reset_index(drop=True)


def _assert_clean_and_equal(out: Path, reference: pd.DataFrame) -> None:
    """Same table as the uninterrupted sweep, each run once, every file whole, nothing left over."""
    table = pd.read_csv(out / "results.csv")
    assert table["run_id"].is_unique and set(table["status"]) == {"done"}
    pd.testing.assert_frame_equal(_comparable(table), _comparable(reference), rtol=1e-6, check_dtype=False)
    epochs = pd.read_csv(out / "epochs.csv")
    assert len(epochs) == len(table) * EPOCHS and not epochs.duplicated(["run_id", "epoch"]).any()
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("lease*")) and not list(out.rglob("last.pt"))
    for run_dir in (out / "runs").iterdir():
        assert json.loads((run_dir / "record.json").read_text())["status"] == "done"
        assert len(pd.read_csv(run_dir / "epochs.csv")) == EPOCHS
        assert set(torch.load(run_dir / "best.pt", weights_only=True)) == {"model", "epoch"}
    assert len(json.loads((out / "folds.json").read_text())["folds"]) == 2
    assert yaml.safe_load((out / "config.resolved.yaml").read_text())["name"] == "t"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """The uninterrupted sweep (on the same images as the `image_folder` fixture)."""
    tmp_path = tmp_path_factory.mktemp("reference")
    experiment = _experiment(tmp_path, make_image_folder(tmp_path / "data", IMAGES), "reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOLDERBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        run_sweep(load_config(experiment), show_progress=False)
    return pd.read_csv(experiment.parent / "out" / "results.csv")


def test_killed_at_every_point_then_rerun_gives_the_uninterrupted_table(tmp_path, image_folder, reference,
                                                                       forkserver):
    experiment = _experiment(tmp_path, image_folder, "killed")
    argv, log = ["run", str(experiment), "--quiet"], tmp_path / "killed.log"
    for point in KILL_POINTS:
        proc = _start(forkserver, argv, log, **{CRASH_ENV: point})
        proc.join(120)
        assert proc.exitcode == -signal.SIGKILL, f"not killed at {point}: exit {proc.exitcode}\n{log.read_text()}"
    proc = _start(forkserver, argv, log)
    proc.join(120)
    assert proc.exitcode == 0, log.read_text()
    _assert_clean_and_equal(experiment.parent / "out", reference)


def test_two_processes_on_one_experiment_train_each_run_once(tmp_path, image_folder, reference, forkserver):
    experiment = _experiment(tmp_path, image_folder, "shared")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_start(forkserver, ["run", str(experiment), "--quiet"], log) for log in logs]
    for proc in procs:
        proc.join(180)
    assert [p.exitcode for p in procs] == [0, 0], [log.read_text() for log in logs]
    trained = [int(log.read_text().split(" trained")[0].rsplit(" ", 1)[-1]) for log in logs]
    assert sum(trained) == len(reference)
    _assert_clean_and_equal(experiment.parent / "out", reference)


def test_lease_excludes_live_holders_and_passes_to_the_next_after_release(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    assert first.acquire("r1")
    assert not second.acquire("r1")
    first.release("r1")
    assert second.acquire("r1")
    second.release("r1")
    assert not (tmp_path / "runs" / "r1" / "lease.json").exists()


def test_lease_of_another_host_counts_while_its_heartbeat_is_fresh(tmp_path):
    store = Store(tmp_path)
    path = store.lease_path("r2")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": 1, "host": socket.gethostname() + "-elsewhere", "time": time.time()}))
    assert not store.acquire("r2")
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert store.acquire("r2")
    assert json.loads(path.read_text())["pid"] == os.getpid()
    store.release("r2")


def test_leases_without_file_locks_fall_back_to_the_owner_pid(tmp_path, monkeypatch, forkserver):
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    store = Store(tmp_path)
    path = store.lease_path("r4")
    path.parent.mkdir(parents=True)
    proc = forkserver.Process(target=time.sleep, args=(30,))
    proc.start()
    try:
        path.write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname(), "time": time.time()}))
        assert not store.acquire("r4")
    finally:
        proc.kill()
        proc.join()
    assert store.acquire("r4")
    store.release("r4")
    with store.locked():
        assert (tmp_path / ".lock").exists()


def test_lease_of_a_killed_process_is_taken_over(tmp_path, forkserver):
    store = Store(tmp_path / "out")
    proc = forkserver.Process(target=_hold_lease_then_die, args=(str(tmp_path / "out"),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    assert json.loads(store.lease_path("r3").read_text())["pid"] == proc.pid
    assert store.acquire("r3")
    store.release("r3")


def _hold_lease_then_die(root: str) -> None:
    Store(root).acquire("r3")
    os.kill(os.getpid(), signal.SIGKILL)


def test_every_torch_load_in_the_repo_uses_weights_only():
    calls = []
    for path in [*REPO.glob("benchmark/**/*.py"), *REPO.glob("methods/**/*.py"), *REPO.glob("scripts/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}", safe))
    assert calls, "expected the checkpoint loads in benchmark/train.py"
    assert [where for where, safe in calls if not safe] == []


def test_results_table_loader_is_unaffected_by_leftover_temp_files(tmp_path, image_folder):
    experiment = _experiment(tmp_path, image_folder, "temp")
    run_sweep(load_config(experiment, ["methods=[ce]", "protocol.folds=2"]), only={"fold": {"0"}}, show_progress=False)
    out = experiment.parent / "out"
    run_dir = next((out / "runs").iterdir())
    (run_dir / ".record.json.abc.tmp").write_text('{"half": ')
    assert len(load_results(out)) == 1


def test_status_shows_a_run_another_process_is_training(tmp_path, image_folder, forkserver, capsys):
    from benchmark.cli import main
    from benchmark.runner import open_sweep

    experiment = write_config(tmp_path / "exp.yaml", image_folder)
    assert main(["run", str(experiment), "--dry-run"]) == 0
    sweep = open_sweep(load_config(experiment), decode_images=False)
    run = sweep.runs[0]
    ready = forkserver.Event()
    proc = forkserver.Process(target=_hold_lease, args=(str(sweep.store.root), run.run_id, ready))
    proc.start()
    try:
        assert ready.wait(60)
        capsys.readouterr()
        assert main(["status", str(experiment)]) == 0
        out = capsys.readouterr().out
        assert "0 done, 0 failed, 1 running, 8 pending" in out
        assert f"running {run.run_id} {run.method} {run.backbone} fold {run.fold}: pid {proc.pid} on" in out
        assert Store(sweep.store.root).acquire(run.run_id) is False
    finally:
        proc.kill()
        proc.join()
    capsys.readouterr()
    assert main(["status", str(experiment)]) == 0
    assert "0 running, 9 pending" in capsys.readouterr().out


def _hold_lease(root: str, run_id: str, ready) -> None:
    assert Store(root).acquire(run_id)
    ready.set()
    time.sleep(60)
