"""The Ray executor on a real local Ray instance: same results as local, a dying worker is retried or recorded."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.store import load_results
from tests.helpers import write_config

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

CRASH_PLUGIN = '''
import os
from pathlib import Path

import torch.nn.functional as F

from methods import Method, register_method


@register_method("crash_for_test")
class CrashForTest(Method):
    """Cross-entropy, but the process dies (os._exit) on its first call while marker_dir holds < times files."""

    citation = "none"

    def __init__(self, marker_dir: str = "", times: int = 1):
        super().__init__()
        self.marker_dir, self.times, self.checked = Path(marker_dir), times, False

    def forward(self, logits, targets):
        if not self.checked:
            self.checked = True
            self.marker_dir.mkdir(exist_ok=True)
            if len(list(self.marker_dir.iterdir())) < self.times:
                (self.marker_dir / f"crash-{os.getpid()}").write_text("")
                os._exit(1)
        return F.cross_entropy(logits, targets)
'''
METRICS = ["test_accuracy", "test_f1", "test_nll", "test_auroc", "val_f1", "selected_epoch"]


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    """A local Ray instance (2 CPUs) and the crash plugin, shared by the tests of this file."""
    plugin = tmp_path_factory.mktemp("plugin") / "crash_plugin.py"
    plugin.write_text(CRASH_PLUGIN)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield plugin
    ray.shutdown()


def _experiment(tmp_path, image_folder, plugin, name: str, times: int, max_retries: int):
    marker = tmp_path / f"markers-{name}"
    return write_config(
        tmp_path / name / "exp.yaml", image_folder, plugins=[str(plugin)],
        methods=["ce", {"name": "crash_for_test", "marker_dir": str(marker), "times": times}],
        protocol={"folds": 2, "val_fraction": 0.25, "seed": 1}, train={"threads": 1},
        run={"output": str(tmp_path / name / "out"), "device": "cpu", "executor": "ray",
             "ray": {"num_cpus_per_run": 1, "max_retries": max_retries}},
    ), marker


def test_ray_matches_local_and_retries_a_dead_worker(tmp_path, image_folder, ray_instance, capsys):
    experiment, marker = _experiment(tmp_path, image_folder, ray_instance, "a", times=1, max_retries=1)
    assert main(["run", str(experiment), "--quiet"]) == 0
    assert "4 trained, 0 failed" in capsys.readouterr().out
    assert len(list(marker.iterdir())) == 1
    on_ray = load_results(experiment.parent / "out")
    assert main(["run", str(experiment), "--quiet", "--set", "run.executor=local",
                 "--set", f"run.output={tmp_path / 'local'}"]) == 0
    local = load_results(tmp_path / "local")
    assert sorted(on_ray["run_id"]) == sorted(local["run_id"]) and set(on_ray["status"]) == {"done"}
    merged = on_ray.merge(local, on="run_id", suffixes=("_ray", "_local"))
    for col in METRICS:
        pd.testing.assert_series_equal(merged[f"{col}_ray"], merged[f"{col}_local"], check_names=False, rtol=1e-6)
    assert main(["run", str(experiment), "--quiet"]) == 0
    assert "0 trained, 0 failed, 4 already finished" in capsys.readouterr().out
    run_dirs = list((experiment.parent / "out" / "runs").iterdir())
    assert all((d / "best.pt").exists() and not (d / "last.pt").exists() and not (d / "lease.json").exists()
               for d in run_dirs)


def test_worker_dying_past_retries_is_recorded_failed_then_retried(tmp_path, image_folder, ray_instance, capsys):
    experiment, marker = _experiment(tmp_path, image_folder, ray_instance, "b", times=2, max_retries=1)
    assert main(["run", str(experiment), "--quiet", "--only", "method=crash_for_test", "fold=0"]) == 0
    assert "0 trained, 1 failed" in capsys.readouterr().out
    assert len(list(marker.iterdir())) == 2
    table = load_results(experiment.parent / "out")
    assert table["status"].tolist() == ["failed"]
    assert "WorkerCrashedError" in table["error"].iloc[0] or "died" in table["error"].iloc[0]
    assert main(["status", str(experiment)]) == 0
    assert "1 failed, 0 running, 3 pending" in capsys.readouterr().out
    assert main(["run", str(experiment), "--quiet", "--only", "method=crash_for_test", "fold=0", "--retry-failed"]) == 0
    assert "1 trained, 0 failed" in capsys.readouterr().out
    assert load_results(experiment.parent / "out")["status"].tolist() == ["done"]


@pytest.mark.parametrize("ask", [{"num_cpus_per_run": 64}, {"num_gpus_per_run": 1}])
def test_a_run_asking_more_than_the_cluster_has_is_refused_up_front(tmp_path, image_folder, ray_instance, capsys, ask):
    import threading

    experiment, _ = _experiment(tmp_path, image_folder, ray_instance, "big", times=0, max_retries=0)
    cfg = __import__("yaml").safe_load(experiment.read_text())
    cfg["run"]["ray"].update(ask)
    experiment.write_text(__import__("yaml").safe_dump(cfg))
    result = []
    worker = threading.Thread(target=lambda: result.append(main(["run", str(experiment), "--quiet"])), daemon=True)
    worker.start()
    worker.join(60)
    assert result == [2], "the run waited for resources the cluster does not have"
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "run.ray." + next(iter(ask)) in lines[0], lines
    assert not (experiment.parent / "out").exists()
