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
import shutil
import signal
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.crash import CRASH_ENV
from benchmark.runner import run_sweep
from benchmark.store import Store, load_results
from tests.helpers import make_image_folder, write_config

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
    "lease:1",                       # just after taking a lease (the stale lease must be taken over)
    "write:results.csv:1",           # during the table rebuild (once per sweep, after the last run)
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


# Damaged files in an output folder: `status` and `report` read past them (one warning line each), `run` moves the
# damaged file aside (NAME.damaged-TIME, never deleted) and repairs: a damaged record means the run is trained again.
# The lease cases are on a pending run (its record removed): a garbage lease must not count as a live owner.
DAMAGED = {
    "record holding []": ("record.json", b"[]"),
    "record holding garbage": ("record.json", b"garbage{"),
    "record holding binary bytes": ("record.json", b"\xff\xfe\x00\x81\x93"),
    "record empty": ("record.json", b""),
    "record lacking the identity keys": ("record.json", b'{"status": "done"}'),
    "run epochs.csv empty": ("epochs.csv", b""),
    "run epochs.csv garbled": ("epochs.csv", b"\x00\x01garbage\n1,2\n"),
    "results.csv empty": ("../../results.csv", b""),
    "resolved config holding binary bytes": ("../../config.resolved.yaml", b"\xff\xfe\x00name: [\x81"),
    "lease with a garbage pid": ("lease.json", json.dumps({"pid": "x", "host": socket.gethostname()}).encode()),
    "lease holding binary bytes": ("lease.json", b"\xff\xfe garbage"),
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """An output folder with two finished runs (ce on folds 0 and 1), copied by each test."""
    tmp_path = tmp_path_factory.mktemp("finished")
    experiment = _small_experiment(tmp_path, tmp_path / "out", make_image_folder(tmp_path / "data", IMAGES))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOLDERBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        run_sweep(load_config(experiment), show_progress=False)
    return tmp_path


def _small_experiment(tmp_path: Path, out: Path, data: Path) -> Path:
    return write_config(tmp_path / "exp.yaml", data, methods=["ce"], protocol={"folds": 2, "val_fraction": 0.25, "seed": 1},
                        train={"epochs": 2, "threads": 1}, run={"output": str(out), "device": "cpu"})


def _copy_of(finished: Path, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """(experiment file, output folder, run ids in table order) of a fresh copy of the finished experiment."""
    out = tmp_path / "out"
    shutil.copytree(finished / "out", out)
    experiment = _small_experiment(tmp_path, out, finished / "data")
    return experiment, out, pd.read_csv(out / "results.csv")["run_id"].tolist()


@pytest.mark.parametrize("name", list(DAMAGED))
def test_damaged_files_never_stop_status_report_or_run(name, finished, tmp_path, capsys):
    experiment, out, run_ids = _copy_of(finished, tmp_path)
    relative, content = DAMAGED[name]
    damaged = (out / "runs" / run_ids[0] / relative).resolve()
    damaged.write_bytes(content)
    if relative == "lease.json":
        (damaged.parent / "record.json").unlink()
    record_damaged, epochs_damaged = relative in ("record.json", "lease.json"), relative == "epochs.csv"
    warned = relative in ("record.json", "epochs.csv")

    assert main(["status", str(experiment)]) == 0
    captured = capsys.readouterr()
    assert f"2 runs: {1 if record_damaged else 2} done, 0 failed, 0 running" in captured.out
    assert captured.err.count(f"warning: {damaged}") == warned, captured.err

    assert main(["report", str(out), "--no-figures", "--out", str(tmp_path / "report")]) == 0
    assert (f"warning: {damaged}" in capsys.readouterr().err) == warned

    assert main(["run", str(experiment), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"{1 if record_damaged else 0} trained, 0 failed" in captured.out
    kept = list(damaged.parent.glob(f"{damaged.name}.damaged-*"))
    if warned:
        assert [p.read_bytes() for p in kept] == [content]
        assert f"warning: {damaged}" in captured.err and kept[0].name in captured.err
    else:
        assert not kept
    table = load_results(out)
    assert sorted(table["run_id"]) == sorted(run_ids) and set(table["status"]) == {"done"}
    assert len(pd.read_csv(out / "results.csv")) == 2
    epochs = pd.read_csv(out / "epochs.csv", dtype={"run_id": str})
    assert sorted(set(epochs["run_id"])) == sorted(run_ids[1:] if epochs_damaged else run_ids)
    assert main(["run", str(experiment), "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err


def _interrupted(tmp_path: Path) -> tuple[Path, Path]:
    """(experiment, output folder) of one run (ce, fold 0) stopped after its first epoch checkpoint."""
    import benchmark.rundir as rundir

    experiment = _small_experiment(tmp_path, tmp_path / "out", make_image_folder(tmp_path / "data", IMAGES))
    real_save = rundir.save_checkpoint

    def stop_after_first_epoch(path, payload):
        real_save(path, payload)
        if path.name == "last.pt":
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rundir, "save_checkpoint", stop_after_first_epoch)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(load_config(experiment), only={"fold": {"0"}}, show_progress=False)
    return experiment, tmp_path / "out"


def _checkpoint_of_another_model(path: Path) -> bytes:
    state = torch.load(path, weights_only=True)
    torch.save(state | {"model": torch.nn.Linear(3, 2).state_dict()}, path)
    return path.read_bytes()


CHECKPOINT_DAMAGE = {
    "last.pt garbage": ("last.pt", lambda path: b"garbage bytes"),
    "last.pt empty": ("last.pt", lambda path: b""),
    "last.pt truncated": ("last.pt", lambda path: path.read_bytes()[:2000]),
    "last.pt lacking the resume keys": ("last.pt", lambda path: _saved(path, {"model": {}})),
    "last.pt of another model": ("last.pt", _checkpoint_of_another_model),
    "best.pt truncated": ("best.pt", lambda path: path.read_bytes()[:2000]),
}


def _saved(path: Path, payload: dict) -> bytes:
    torch.save(payload, path)
    return path.read_bytes()


@pytest.mark.parametrize("name", list(CHECKPOINT_DAMAGE))
def test_a_damaged_checkpoint_is_set_aside_and_the_run_starts_from_scratch(name, finished, tmp_path, capsys):
    experiment, out = _interrupted(tmp_path)
    filename, damage = CHECKPOINT_DAMAGE[name]
    (run_dir,) = (out / "runs").iterdir()
    path = run_dir / filename
    content = damage(path)
    path.write_bytes(content)
    capsys.readouterr()
    assert main(["run", str(experiment), "--quiet", "--only", "fold=0"]) == 0
    captured = capsys.readouterr()
    assert "1 trained, 0 failed" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(path) in warnings[0] and "from scratch" in warnings[0], captured.err
    assert [p.read_bytes() for p in run_dir.glob(f"{filename}.damaged-*")] == [content]
    record = json.loads((run_dir / "record.json").read_text())
    uninterrupted = pd.read_csv(finished / "out" / "results.csv").set_index("run_id").loc[run_dir.name]
    assert record["status"] == "done" and record["epochs_run"] == 2
    assert record["test_nll"] == pytest.approx(uninterrupted["test_nll"], rel=1e-6)


# Disk full, read-only, permission denied: one line naming the path and the errno, exit 1 (2 is for bad input),
# nothing half-written left; a run in progress is recorded failed (inside a run) or stays pending (outside).
DISK_ERRORS = [errno.ENOSPC, errno.EROFS, errno.EACCES]


def _error_line(err: str) -> str:
    """The one `error:` line of a command's stderr (besides headers and progress bars), with no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def _no_leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.endswith(".tmp") or ".write-test" in p.name or ".tmp-" in p.name]


@pytest.mark.parametrize("code", DISK_ERRORS)
def test_a_disk_error_writing_a_record_is_one_line_exit_1_and_the_run_stays_pending(code, finished, tmp_path,
                                                                                     monkeypatch, capsys):
    experiment, out, run_ids = _copy_of(finished, tmp_path)
    (out / "runs" / run_ids[0] / "record.json").unlink()
    real_replace = os.replace

    def failing_replace(src, dst, **kwargs):
        if Path(dst).name == "record.json":
            raise OSError(code, os.strerror(code))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    assert main(["run", str(experiment), "--quiet"]) == 1
    line = _error_line(capsys.readouterr().err)
    assert f"{out / 'runs' / run_ids[0] / 'record.json'}: {os.strerror(code)} ({errno.errorcode[code]})" in line
    assert _no_leftovers(out) == []
    monkeypatch.setattr(os, "replace", real_replace)
    assert main(["status", str(experiment)]) == 0
    assert "1 done, 0 failed, 0 running, 1 pending" in capsys.readouterr().out
    assert main(["run", str(experiment), "--quiet"]) == 0
    assert "1 trained, 0 failed, 1 already finished" in capsys.readouterr().out


def test_a_disk_error_inside_a_run_fails_that_run_and_leaves_no_half_checkpoint(finished, tmp_path, monkeypatch,
                                                                                 capsys):
    experiment, out, run_ids = _copy_of(finished, tmp_path)
    (out / "runs" / run_ids[0] / "record.json").unlink()
    real_save = torch.save

    def half_then_full(payload, path, *args, **kwargs):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", half_then_full)
    assert main(["run", str(experiment), "--quiet"]) == 0
    assert "0 trained, 1 failed" in capsys.readouterr().out
    monkeypatch.setattr(torch, "save", real_save)
    record = json.loads((out / "runs" / run_ids[0] / "record.json").read_text())
    assert record["status"] == "failed" and "No space left on device" in record["error"]
    assert "best.pt" in record["error"]
    assert _no_leftovers(out) == []


def test_a_disk_error_in_the_write_test_leaves_no_probe_file(finished, tmp_path, monkeypatch, capsys):
    experiment, out, _ = _copy_of(finished, tmp_path)
    real_write = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.startswith(".write-test"):
            real_write(self, "")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert main(["run", str(experiment), "--quiet"]) == 2
    assert "cannot be created or written (No space left on device)" in capsys.readouterr().err
    assert _no_leftovers(out) == []


def test_a_disk_error_saving_the_decode_cache_is_one_line_and_leaves_no_temp_file(tmp_path, image_folder,
                                                                                   monkeypatch, capsys):
    import numpy as np

    monkeypatch.setenv("SOLDERBENCH_CACHE", str(tmp_path / "cache"))
    experiment = write_config(tmp_path / "exp.yaml", image_folder, methods=["ce"])

    def full(file, array, *args, **kwargs):
        file.write(b"\x93NUMPY half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", full)
    assert main(["run", str(experiment), "--quiet"]) == 1
    line = _error_line(capsys.readouterr().err)
    assert ".npy: No space left on device (ENOSPC)" in line
    assert (tmp_path / "cache").is_dir() and _no_leftovers(tmp_path / "cache") == []
    assert not (tmp_path / "out").exists()


def test_a_read_only_report_folder_is_one_line_exit_1(finished, tmp_path, monkeypatch, capsys):
    _, out, _ = _copy_of(finished, tmp_path)
    report = tmp_path / "report"
    real_replace = os.replace

    def read_only(src, dst, **kwargs):
        if Path(dst).is_relative_to(tmp_path) and not Path(dst).is_relative_to(out):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", read_only)
    assert main(["report", str(out), "--no-figures", "--out", str(report)]) == 1
    assert "Read-only file system (EROFS)" in _error_line(capsys.readouterr().err)
    assert not report.exists() and _no_leftovers(tmp_path) == []
