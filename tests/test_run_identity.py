"""One computation, one run id: coerced parameters, defaults filled, repeated entries collapsed; a run that raises
any exception is that run's failure and the sweep goes on."""

from __future__ import annotations

import json

import pytest

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.runner import open_sweep
from tests.helpers import write_config

FAILING_PLUGIN = '''
import methods
from methods.objectives import CrossEntropy


@methods.register_method("broken_{kind}")
class Broken(CrossEntropy):
    """Raises {kind} in forward."""

    citation = "test"

    def forward(self, logits, targets):
        raise {kind}("boom")


@methods.register_method("picky")
class Picky(CrossEntropy):
    """Rejects its parameter with a plain ValueError."""

    citation = "test"

    def __init__(self, level: int = 1):
        super().__init__()
        if level > 3:
            raise ValueError("level must be at most 3")
'''


@pytest.fixture(autouse=True)
def _isolated(isolated_registries):
    """Plugins registered here do not leak into other tests."""


def _run_ids(tmp_path, methods_list, **sections) -> list[str]:
    path = write_config(tmp_path / "exp.yaml", sections.pop("data_root"), methods=methods_list, **sections)
    return [r.run_id for r in open_sweep(load_config(path), decode_images=False).runs]


@pytest.mark.parametrize("a, b", [
    ([{"name": "alpha_js", "alpha": 0.5, "beta": 1}], [{"name": "alpha_js", "alpha": 0.5, "beta": 1.0}]),
    (["focal"], [{"name": "focal", "gamma": 2}]),
    (["alpha_js"], [{"name": "alpha_js", "alpha": 0.5}]),
])
def test_the_same_computation_has_one_run_id(tmp_path, image_folder, a, b):
    assert _run_ids(tmp_path / "a", a, data_root=image_folder) == _run_ids(tmp_path / "b", b, data_root=image_folder)


def test_repeated_entries_collapse_to_one_run(tmp_path, image_folder):
    once = _run_ids(tmp_path / "a", ["ce"], data_root=image_folder, seeds=[0], backbones=["tiny_cnn"])
    twice = _run_ids(tmp_path / "b", ["ce", {"name": "ce"}], data_root=image_folder, seeds=[0, 0],
                     backbones=["tiny_cnn", "tiny_cnn"])
    assert twice == once and len(once) == 3


def test_duplicated_entries_train_once_and_are_all_done(tmp_path, image_folder, capsys):
    path = write_config(tmp_path / "exp.yaml", image_folder, methods=["ce", {"name": "alpha_js", "beta": 1},
                                                                      {"name": "alpha_js", "beta": 1.0}],
                        seeds=[0, 0], train={"epochs": 1})
    assert main(["run", str(path)]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "runs").glob("*/record.json")]
    assert len(records) == 6 and {r["status"] for r in records} == {"done"}
    assert len({r["method_label"] for r in records}) == 2
    assert "taken by another process" not in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["KeyError", "TypeError", "AssertionError", "IndexError"])
def test_a_method_raising_any_exception_fails_its_runs_and_the_sweep_goes_on(tmp_path, image_folder, kind):
    (tmp_path / "plugin.py").write_text(FAILING_PLUGIN.replace("{kind}", kind))
    path = write_config(tmp_path / "exp.yaml", image_folder, plugins=["plugin.py"],
                        methods=[f"broken_{kind}", "ce"], train={"epochs": 1})
    assert main(["run", str(path)]) in (0, 1)
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "runs").glob("*/record.json")]
    by_method = {}
    for record in records:
        by_method.setdefault(record["method"], set()).add(record["status"])
    assert by_method == {f"broken_{kind}": {"failed"}, "ce": {"done"}}
    failed = next(r for r in records if r["status"] == "failed")
    assert failed["error"].startswith(f"{kind}:")
    assert "boom" in (tmp_path / "out" / "runs" / failed["run_id"] / "error.txt").read_text()


def test_a_plugin_init_rejecting_a_value_is_a_one_line_config_error(tmp_path, image_folder, capsys):
    (tmp_path / "plugin.py").write_text(FAILING_PLUGIN.replace("{kind}", "KeyError"))
    path = write_config(tmp_path / "exp.yaml", image_folder, plugins=["plugin.py"],
                        methods=[{"name": "picky", "level": 5}])
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "methods[0]" in err[0] and "level must be at most 3" in err[0]
    assert not (tmp_path / "out").exists()


def test_each_record_holds_the_resolved_config_its_run_id_hashes(tmp_path, image_folder):
    import hashlib

    path = write_config(tmp_path / "exp.yaml", image_folder, methods=["ce"], train={"epochs": 1})
    assert main(["run", str(path), "--only", "fold=0"]) == 0
    record = json.loads(next((tmp_path / "out" / "runs").glob("*/record.json")).read_text())
    resolved = record["resolved_config"]
    assert resolved["train"]["optimizer"]["lr"] == 1e-2 and resolved["method"] == "ce"
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert digest == record["run_id"]


def test_a_method_that_cannot_train_the_task_is_refused_before_any_folder(tmp_path, capsys):
    from tests.helpers import make_image_folder

    data = make_image_folder(tmp_path / "data", {"a": 9, "b": 9, "c": 9})
    path = write_config(tmp_path / "exp.yaml", data, data={"root": str(data), "image_size": 16, "positive": None},
                        methods=["ce", {"name": "alpha_js", "variant": "reference"}])
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "methods" in err[0] and "variant='reference'" in err[0] and "got 3" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_plan_owns_run_specs_and_does_not_import_training():
    import ast
    from pathlib import Path

    import benchmark.plan

    tree = ast.parse(Path(benchmark.plan.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "benchmark.train" not in imported and hasattr(benchmark.plan, "RunSpec")
