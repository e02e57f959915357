"""Trust, round 3 (issue 23): one regression test per kind of fault a hostile tester found. No text from data or runs
becomes live HTML or breaks a table; a name stays a name; nothing foreign is overwritten; a tampered cache is rebuilt;
left-out runs are named; plausible mistakes end in one line; tuning bounds are the config's; an unreachable tracker
costs seconds; a multi-class task selects by macro-F1; a report never replaces another folder's report."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark.cli import main
from tests.helpers import make_image_folder, write_config


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(tmp, experiment file, output folder): fold 0 of ce and alpha_js (α 0.5) trained on a tiny two-class folder."""
    tmp = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOLDERBENCH_CACHE", str(tmp / "cache"))
        data = make_image_folder(tmp / "data", {"normal": 24, "defective": 12})
        path = write_config(tmp / "exp.yaml", data, methods=["ce", {"name": "alpha_js", "alpha": 0.5}])
        assert main(["run", str(path), "--only", "fold=0", "--quiet"]) == 0
    return tmp, path, tmp / "out"


def _copy(trained, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the trained experiment (experiment file, output folder) to damage."""
    src, path, out = trained
    shutil.copytree(src / "out", tmp_path / "out")
    cfg = yaml.safe_load(path.read_text())
    cfg["run"]["output"] = str(tmp_path / "out")
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    resolved = yaml.safe_load((tmp_path / "out" / "config.resolved.yaml").read_text())
    resolved["run"]["output"] = str(tmp_path / "out")
    (tmp_path / "out" / "config.resolved.yaml").write_text(yaml.safe_dump(resolved))
    return tmp_path / "exp.yaml", tmp_path / "out"


# 1. text reaching HTML, Markdown or LaTeX -------------------------------------------------------------------------------

def test_text_from_data_or_runs_is_escaped_in_every_page_and_table(tmp_path):
    from benchmark.explain.markdown import _table
    from benchmark.report import build, html

    hostile = "<script>alert(1)</script>"
    failures = build._failures(pd.DataFrame({"run_id": ["a"], "method_label": [hostile], "backbone": ["b"],
                                             "status": ["failed"], "error": [f"ValueError: {hostile}"]}))
    audit_md = (f"- **Warning:** file `x` and {hostile} <img src=x onerror=alert(2)> conflict; "
                "[see](javascript:alert(3))\n")
    page = html.render(
        name="x", tables=[], pairwise="", friedman="", stat_notes=[], figures=[], figure_dir=tmp_path, status="",
        failures=failures, selection="", audit_md=audit_md, explain_md=f"# {hostile}\n", config="",
        provenance={"Runs": "", "Report generated": ""}, warnings=[], baseline=None, select_by="val_f1", oracle=False)
    assert "<script>" not in page and "<img src=x" not in page and 'href="javascript' not in page
    assert "&lt;script&gt;" in page
    # a name with | or a newline keeps a Markdown table's shape
    table = _table(pd.DataFrame({"label": ["a|b\nc", "d"], "fold": [0, 1]}), {"label": "method", "fold": "fold"})
    assert all(line.count("|") - line.count("\\|") == 3 for line in table.splitlines())
    from benchmark.report.tables import to_latex
    summary = pd.DataFrame({"row": ["a_b & c%"], "backbone": ["x"], "metric": ["test_accuracy"], "mean": [0.5],
                            "std": [0.1], "n": [3], "n_failed": [0], "n_expected": [3],
                            "kind": ["setting"]})
    tex = to_latex(summary, "c", "l")
    assert "a\\_b \\& c\\%" in tex


# 2. names that leave their folder ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "", "../../x", "a/b", "/abs", "a\\b", "a\nb", "a\x07b"])
def test_a_name_that_is_not_a_plain_name_is_refused(name, tmp_path, image_folder, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "exp.yaml", image_folder, name=name, run={"device": "cpu"})
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["run", str(path), "--dry-run", "--no-estimate"]) == 2
    lines = _errors(capsys)
    assert len(lines) == 1 and "name:" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# 4. an output folder solderbench did not make, explain --out among the images -------------------------------------------

def test_run_refuses_a_folder_it_did_not_make_and_explain_refuses_the_data_folder(trained, tmp_path, image_folder, capsys):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "results.csv").write_text("my own numbers\n")
    (own / "folds.json").write_text("{}\n")
    path = write_config(tmp_path / "exp.yaml", image_folder, run={"output": str(own), "device": "cpu"})
    assert main(["run", str(path), "--only", "fold=0", "method=ce", "--quiet"]) == 2
    lines = _errors(capsys)
    assert len(lines) == 1 and "run.output" in lines[0] and "did not make" in lines[0], lines
    assert (own / "results.csv").read_text() == "my own numbers\n" and sorted(os.listdir(own)) == ["folds.json", "results.csv"]
    # a folder an older solderbench made (config.resolved.yaml and runs/, no marker) is still resumed
    _, out = _copy(trained, tmp_path / "old")
    (out / ".solderbench-output").unlink(missing_ok=True)
    assert main(["run", str(tmp_path / "old" / "exp.yaml"), "--only", "fold=0", "--quiet"]) == 0
    capsys.readouterr()
    _, _, out = trained
    data = yaml.safe_load((out / "config.resolved.yaml").read_text())["data"]["root"]
    assert main(["explain", str(out), "--diversity-only", "--quiet", "--out", str(Path(data) / "normal" / "x")]) == 2
    lines = _errors(capsys)
    assert len(lines) == 1 and "--out" in lines[0] and "data" in lines[0], lines
    assert not (Path(data) / "normal" / "x").exists()


# 5 (second half). the decoded-image cache ------------------------------------------------------------------------------

def test_a_tampered_truncated_or_short_image_cache_is_rebuilt_with_one_warning(image_folder, tmp_path, capsys):
    from benchmark.data.cache import decode
    from benchmark.data.folders import scan

    files = scan(image_folder)
    cache = tmp_path / "decoded"
    fresh = decode(files, 16, cache_dir=cache).images.copy()
    npy = next(cache.glob("*.npy"))
    capsys.readouterr()
    damages = {
        "other pixels": lambda: np.save(npy, 255 - fresh),
        "truncated": lambda: npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2]),
        "fewer images": lambda: np.save(npy, fresh[:-3]),
    }
    for what, damage in damages.items():
        damage()
        again = decode(files, 16, cache_dir=cache)
        np.testing.assert_array_equal(again.images, fresh, err_msg=what)
        lines = _errors(capsys)
        assert len(lines) == 1 and "cache" in lines[0] and "rebuilt" in lines[0], (what, lines)
        decode(files, 16, cache_dir=cache)
        assert _errors(capsys) == [], what


# 6. runs left out for want of a checkpoint ------------------------------------------------------------------------------

def test_runs_without_their_checkpoint_are_named_by_explain_and_noticed_by_run(trained, tmp_path, capsys):
    path, out = _copy(trained, tmp_path)
    results = pd.read_csv(out / "results.csv")
    ce = results.loc[results["method"] == "ce", "run_id"].iloc[0]
    (out / "runs" / ce / "best.pt").unlink()
    assert main(["explain", str(out), "--diversity-only", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert ce in err and "best.pt" in err, err
    assert main(["run", str(path), "--only", "fold=0", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "1 finished run" in err and "checkpoint" in err, err
    for best in out.glob("runs/*/best.pt"):
        best.unlink()
    assert main(["explain", str(out), "--diversity-only", "--quiet"]) == 2
    lines = _errors(capsys)
    assert len(lines) == 1 and "best.pt" in lines[0] and "run.output" in lines[0] and "train one first" not in lines[0]


# 7. tracebacks on plausible mistakes ------------------------------------------------------------------------------------

def _huge_image(tmp, path, out):
    cfg = yaml.safe_load(path.read_text())
    cfg["data"]["image_size"] = 1_000_000
    cfg["run"]["output"] = str(tmp / "huge")
    path.write_text(yaml.safe_dump(cfg))
    return ["run", str(path), "--quiet"]


def _cache_is_a_file(tmp, path, out):
    (tmp / "cachefile").write_text("")
    os.environ["SOLDERBENCH_CACHE"] = str(tmp / "cachefile")
    return ["run", str(path), "--dry-run", "--no-estimate"]


def _audit_out_is_a_file(tmp, path, out):
    (tmp / "afile").write_text("mine")
    return ["audit", str(path), "--out", str(tmp / "afile")]


def _explain_out_is_a_file(tmp, path, out):
    (tmp / "afile").write_text("mine")
    return ["explain", str(out), "--diversity-only", "--quiet", "--out", str(tmp / "afile")]


def _malicious_checkpoint(tmp, path, out):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    for best in out.glob("runs/*/best.pt"):
        best.write_bytes(pickle.dumps(Evil()))
    return ["explain", str(out), "--diversity-only", "--quiet"]


def _empty_grid(tmp, path, out):
    cfg = yaml.safe_load(path.read_text())
    cfg["methods"] = ["ce", {"name": "alpha_js", "alpha": []}]
    path.write_text(yaml.safe_dump(cfg))
    return ["run", str(path), "--dry-run", "--no-estimate"]


@pytest.mark.parametrize("mistake", [_huge_image, _cache_is_a_file, _audit_out_is_a_file, _explain_out_is_a_file,
                                     _malicious_checkpoint, _empty_grid])
def test_plausible_mistakes_end_in_one_line_and_exit_2(mistake, trained, tmp_path, capsys, monkeypatch):
    path, out = _copy(trained, tmp_path)
    monkeypatch.setenv("SOLDERBENCH_CACHE", os.environ["SOLDERBENCH_CACHE"])
    argv = mistake(tmp_path, path, out)
    assert main(argv) == 2
    lines = _errors(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert (tmp_path / "afile").read_text() == "mine" if (tmp_path / "afile").exists() else True


# 8. tuning bounds are the config's ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("space", [{"train.batch_size": {"int": [1, 2]}},
                                   {"train.optimizer.name": {"choice": ["adam", "adam"]}}])
def test_the_search_space_is_held_to_the_config_bounds(space, tmp_path, image_folder, capsys):
    path = write_config(tmp_path / "exp.yaml", image_folder, tune={"trials": 2, "space": space})
    assert main(["run", str(path), "--dry-run", "--no-estimate"]) == 2
    lines = _errors(capsys)
    assert len(lines) == 1 and "tune.space" in lines[0] and next(iter(space)) in lines[0], lines
    assert not (tmp_path / "out").exists()


# 9. trackers that cannot be reached -------------------------------------------------------------------------------------

def test_an_unreachable_tracker_is_probed_once_and_left_out_within_seconds(tmp_path, capsys):
    import socket

    from benchmark.trackers import open_trackers

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    (tmp_path / "mlflow.db").mkdir()
    for uri in (f"http://127.0.0.1:{port}", None):
        start = time.perf_counter()
        trackers = open_trackers(["mlflow"], tmp_path, "t", {}, uri)
        assert time.perf_counter() - start < 5 and trackers.trackers == []
        lines = _errors(capsys)
        assert len(lines) == 1 and "mlflow" in lines[0] and "without it" in lines[0], lines


# 10. selection on a multi-class task ------------------------------------------------------------------------------------

def test_a_multiclass_task_without_positive_selects_by_macro_f1(tmp_path, capsys):
    from benchmark.config import load_config
    from benchmark.sweep import open_sweep
    from benchmark.tune.studies import resolve_tuning

    three = make_image_folder(tmp_path / "three", {"a": 12, "b": 12, "c": 12})
    path = write_config(tmp_path / "exp.yaml", three, data={"positive": None}, tune={"trials": 2})
    sweep = open_sweep(load_config(path), decode_images=False)
    assert sweep.cfg.protocol.select_by == "val_macro_f1"
    assert resolve_tuning(sweep.cfg, sweep.prepared.class_names).metric == "val_macro_f1"
    explicit = write_config(tmp_path / "x.yaml", three, data={"positive": None}, protocol={"select_by": "val_f1"})
    assert main(["run", str(explicit), "--dry-run", "--no-estimate"]) == 0
    assert "val_macro_f1" in capsys.readouterr().err
    # a two-class task keeps val_f1 and its run ids
    binary = make_image_folder(tmp_path / "two", {"normal": 12, "defective": 12})
    implicit = open_sweep(load_config(write_config(tmp_path / "b.yaml", binary)), decode_images=False)
    given = open_sweep(load_config(write_config(tmp_path / "c.yaml", binary, protocol={"select_by": "val_f1"})),
                       decode_images=False)
    assert implicit.cfg.protocol.select_by == "val_f1"
    assert [r.run_id for r in implicit.runs] == [r.run_id for r in given.runs]


# 11. a report never replaces another output folder's report; flat maps are a failure -----------------------------------

def test_a_report_of_another_output_folder_is_not_replaced_and_flat_maps_fail(trained, tmp_path, capsys, monkeypatch):
    import benchmark.explain.build as explain_build

    _, first = _copy(trained, tmp_path / "a")
    _, second = _copy(trained, tmp_path / "b")
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(first), "--no-figures"]) == 0
    before = (tmp_path / "reports" / "t" / "index.html").read_text()
    capsys.readouterr()
    assert main(["report", str(second), "--no-figures"]) == 2
    lines = _errors(capsys)
    assert len(lines) == 1 and str(first) in lines[0] and "--out" in lines[0], lines
    assert (tmp_path / "reports" / "t" / "index.html").read_text() == before
    assert main(["report", str(first), "--no-figures"]) == 0  # its own report is replaced as before

    monkeypatch.setattr(explain_build, "compute_cams",
                        lambda model, target, method, inputs, classes, batch_size=32: np.zeros((len(inputs), 16, 16)))
    capsys.readouterr()
    assert main(["explain", str(first), "--no-noise", "--cam", "gradcam", "--images", "2", "--eval-images", "4",
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "flat" in err and "failed" in err, err
    assert "failed" in (first / "explain" / "explain.md").read_text().lower()


# ugly but safe ---------------------------------------------------------------------------------------------------------

def test_ugly_but_safe_inputs_get_a_clear_answer(tmp_path, image_folder, capsys):
    from benchmark.plan import parse_only

    assert parse_only(["method=ce,fold=0"]) == {"method": {"ce"}, "fold": {"0"}}
    assert parse_only(["method=ce,alpha_js", "fold=0"]) == {"method": {"ce", "alpha_js"}, "fold": {"0"}}
    assert main(["run", str(tmp_path), "--dry-run"]) == 2
    assert "folder" in capsys.readouterr().err
    from benchmark.executors.local import resolve_workers

    cores = len(os.sched_getaffinity(0))
    assert resolve_workers(cores, 2, 100) == cores
    assert "threads on" in capsys.readouterr().err
    from benchmark.report.build import same_objective

    both = pd.DataFrame({"method": ["max_entropy", "confidence_penalty", "confidence_penalty"],
                         "param_gamma": [0.1, None, None], "param_beta": [None, 0.1, 0.2],
                         "param_threshold": [None, None, 0.5]})
    assert "same objective" in same_objective(both) and "0.1" in same_objective(both)
    assert same_objective(both.iloc[[0, 2]]) == ""
    from benchmark.tune.sampling import Finished, draw
    from methods.space import Choice

    for sampler in ("random", "tpe"):  # three choices, three trials: each is tried once, never one twice
        for first in range(5):
            history = []
            for k in range(3):
                values = draw({"m.x": Choice(("a", "b", "c"))}, history, sampler, 0, first * 10 + k, 3, True)
                history.append(Finished(values, 0.5))
            assert sorted(h.values["m.x"] for h in history) == ["a", "b", "c"], (sampler, first)
