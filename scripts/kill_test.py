"""Kill `python -m benchmark run` with SIGKILL at random moments, run it again, and check the final results table
equals an uninterrupted sweep's (same run ids, metrics to 1e-6), with no run lost or duplicated and no broken file.

    python scripts/kill_test.py --kills 30 --seed 0

Half of the kills come from outside at a random time after the process has started its sweep; the other half from
the fault-injection hook ($SOLDERBENCH_CRASH_AT) at a random point: mid-epoch, mid checkpoint write, mid record or
table write, right after a lease is taken or a record is written. When a sweep finishes before the wanted number of
kills, it is checked and a new one starts in a fresh folder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

PROVENANCE = {"wall_time_s", "finished_at", "git_commit", "git_dirty", "versions", "device"}
HOOK_POINTS = ["batch", "checkpoint", "heartbeat", "lease", "recorded", "write:epochs.csv", "write:record.json",
               "write:results.csv", "write:config.resolved.yaml"]
EXPERIMENT = {
    "name": "kill-test",
    "data": {"root": "synthetic", "synthetic": {"n": 60, "seed": 0, "size": 16}, "image_size": 16,
             "classes": {"normal": ["normal"], "defective": ["excessive_solder", "insufficient_solder",
                                                             "shifted_component", "short"]},
             "positive": "defective"},
    "protocol": {"folds": 3, "val_fraction": 0.25, "seed": 1},
    "train": {"epochs": 4, "batch_size": 8, "threads": 1},
    "methods": ["ce", {"name": "alpha_js", "alpha": 0.5}],
    "backbones": ["tiny_cnn"],
    "run": {"device": "cpu"},
}


def run_command(experiment: Path, output: Path) -> list[str]:
    return [sys.executable, "-m", "benchmark", "run", str(experiment), "--quiet", "--set", f"run.output={output}"]


def verify(output: Path, reference: pd.DataFrame, epochs: int) -> None:
    """Raise AssertionError unless `output` holds the reference table and every file in it is whole."""
    table = pd.read_csv(output / "results.csv")
    assert table["run_id"].is_unique and set(table["status"]) == {"done"}, "lost, duplicated or failed runs"

    def comparable(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[c for c in frame if c in PROVENANCE]).sort_values("run_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(comparable(table), comparable(reference), rtol=1e-6, check_dtype=False)
    history = pd.read_csv(output / "epochs.csv")
    assert len(history) == len(table) * epochs and not history.duplicated(["run_id", "epoch"]).any()
    leftovers = [*output.rglob("*.tmp"), *output.rglob("lease.json"), *output.rglob("last.pt")]
    assert not leftovers, f"left over: {leftovers}"
    for run_dir in (output / "runs").iterdir():
        assert json.loads((run_dir / "record.json").read_text())["status"] == "done"
        torch.load(run_dir / "best.pt", weights_only=True)
    json.loads((output / "folds.json").read_text())
    yaml.safe_load((output / "config.resolved.yaml").read_text())


def one_attempt(cmd: list[str], output: Path, rng: random.Random, window: float, env: dict) -> tuple[int, str]:
    """Start the command and kill it (outside or via the hook); returns (exit code, how it was killed)."""
    if rng.random() < 0.5:
        point = f"{rng.choice(HOOK_POINTS)}:{rng.randint(1, 4)}"
        proc = subprocess.run(cmd, env=env | {"SOLDERBENCH_CRASH_AT": point}, capture_output=True, text=True)
        return proc.returncode, f"hook {point}"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not (output / "config.resolved.yaml").exists():
        time.sleep(0.05)
    delay = rng.uniform(0, window)
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode, f"outside after {delay:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="how many SIGKILLs in total")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed after")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kill-test-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SOLDERBENCH_CACHE=str(work / "cache"))
    experiment = work / "exp.yaml"
    experiment.write_text(yaml.safe_dump(EXPERIMENT))
    tick = time.perf_counter()
    subprocess.run(run_command(experiment, work / "reference"), env=env, check=True, capture_output=True)
    reference = pd.read_csv(work / "reference" / "results.csv")
    window = float(reference["wall_time_s"].sum()) * 1.2
    print(f"reference sweep: {len(reference)} runs in {time.perf_counter() - tick:.1f} s; kill window {window:.1f} s")
    kills, sweeps, attempt_in_sweep = 0, 0, 0
    output = work / f"killed-{sweeps}"
    while kills < args.kills:
        code, how = one_attempt(run_command(experiment, output), output, rng, window, env)
        attempt_in_sweep += 1
        if code == -signal.SIGKILL:
            kills += 1
            print(f"  kill {kills:3d}: {how}")
            continue
        if code != 0:
            print(f"  unexpected exit code {code} ({how})")
            return 1
        verify(output, reference, EXPERIMENT["train"]["epochs"])
        print(f"sweep {sweeps}: identical to the reference after {attempt_in_sweep - 1} kill(s)")
        shutil.rmtree(output)
        sweeps, attempt_in_sweep = sweeps + 1, 0
        output = work / f"killed-{sweeps}"
    subprocess.run(run_command(experiment, output), env=env, check=True, capture_output=True)
    verify(output, reference, EXPERIMENT["train"]["epochs"])
    print(f"sweep {sweeps}: identical to the reference after {attempt_in_sweep} kill(s)")
    print(f"OK: {kills} kills over {sweeps + 1} sweeps, every final table equal to the uninterrupted one")
    if args.workdir is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
