"""Portable numerics (capped CPU kernels, fixed threads), what a record says made it, and `verify`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from benchmark import numerics
from benchmark.cli import main
from benchmark.config import load_config
from benchmark.plan import semantic_config
from benchmark.report.provenance import mixed_environments
from tests.helpers import write_config

REPO = Path(__file__).resolve().parent.parent
x86_avx2 = pytest.mark.skipif(numerics.portable_possible() is not None, reason="needs an x86-64 CPU with AVX2")


def _python(code: str, **env: str) -> str:
    """Run `code` in a fresh interpreter (the caps act before torch's first kernel) and return its stdout."""
    import os

    clean = {k: v for k, v in os.environ.items() if k not in (*numerics.PORTABLE_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO,
                         env={**clean, **env}, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@x86_avx2
def test_portable_caps_every_kernel_library_in_a_fresh_process():
    state = json.loads(_python("""
        import json
        from benchmark import numerics
        numerics.prepare_environment("portable")
        print(json.dumps(numerics.enter("portable", None)))
    """))
    assert state["numerics"] == "portable" and state["aten_capability"] == "AVX2"
    assert state["mkl_branch"] == "AVX2,STRICT" and state["onednn_isa"] == "AVX2"
    assert state["threads"] == numerics.PORTABLE_THREADS


@x86_avx2
def test_portable_cannot_take_effect_after_kernels_ran_without_the_caps():
    out = _python("""
        import torch
        from benchmark import numerics
        (torch.randn(64, 64) @ torch.randn(64, 64)).sum()
        try:
            numerics.enter("portable", 1)
            print("entered")
        except numerics.NotApplicable as exc:
            print("not applicable:", exc)
    """)
    assert out.startswith("not applicable")


@x86_avx2
def test_a_capped_gemm_differs_from_the_native_one_and_repeats_exactly():
    code = """
        import hashlib, sys, torch
        from benchmark import numerics
        numerics.prepare_environment(sys.argv[-1] if len(sys.argv) > 1 else "{mode}")
        numerics.enter("{mode}", 1)
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(257, 513, generator=g), torch.randn(513, 129, generator=g)
        print(hashlib.sha256((a @ b).numpy().tobytes()).hexdigest())
    """
    portable = [_python(code.format(mode="portable")) for _ in range(2)]
    assert portable[0] == portable[1]
    if numerics.cpu_isa() == "AVX512":  # the native branch is AVX-512 here: other bits, which the cap removes
        assert _python(code.format(mode="native")) != portable[0]


def test_numerics_and_threads_are_part_of_the_run_id(tmp_path, image_folder):
    path = write_config(tmp_path / "exp.yaml", image_folder)
    ids = {}
    for name, overrides in {"portable": [], "native": ["train.numerics=native"], "threads2": ["train.threads=2"],
                            "cl": ["train.channels_last=false"], "eval": ["train.eval_batch_size=3"]}.items():
        ids[name] = json.dumps(semantic_config(load_config(path, overrides)), sort_keys=True)
    assert len(set(ids.values())) == len(ids)
    unset = semantic_config(load_config(path, ["train.threads=null"]))
    assert unset["train"]["threads"] == numerics.PORTABLE_THREADS  # portable fixes an unset count
    native_unset = semantic_config(load_config(path, ["train.threads=null", "train.numerics=native"]))
    assert native_unset["train"]["threads"] is None


def test_records_say_what_made_them_and_the_report_lists_it(tmp_path, image_folder):
    path = write_config(tmp_path / "exp.yaml", image_folder, methods=["ce"])
    assert main(["run", str(path), "--quiet"]) == 0
    record = json.loads(next((tmp_path / "out" / "runs").glob("*/record.json")).read_text())
    env, versions = record["environment"], record["versions"]
    assert env["numerics"] == numerics.effective_mode("portable") and env["threads"] == 1
    assert {"cpu_model", "cpu_isa", "aten_capability", "mkl_branch", "onednn_isa"} <= set(env)
    from importlib.metadata import version

    for name in ("torch", "torchvision", "timm", "numpy", "pillow", "scipy", "scikit-learn", "optuna", "pandas"):
        assert versions[name] == version(name), name
    assert len(versions["stack"]) == 12
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert mixed_environments(table) is None
    other = table.copy()
    other["environment"] = [json.dumps({**env, "numerics": "native", "aten_capability": "AVX512"})] * len(other)
    warning = mixed_environments(pd.concat([table, other]))
    assert warning and "2 numerical environments" in warning and "native" in warning


def test_tuning_draws_are_rounded_before_they_are_used_and_hashed():
    from benchmark.tune.sampling import SIGNIFICANT_DIGITS, rounded
    from methods.space import Choice, LogUniform

    dims = {"lr": LogUniform(1e-4, 1e-2), "c": Choice((0.1234567891, 2))}
    # two CPUs' last bits of the same draw (seen in the wild) give one value
    a = rounded(dims, {"lr": 0.001259776034117258, "c": 0.1234567891})
    b = rounded(dims, {"lr": 0.0012597760341172583, "c": 0.1234567891})
    assert a == b == {"lr": 0.00125978, "c": 0.1234567891}  # a user's choice value is kept as written
    assert len(repr(a["lr"]).replace("0.00", "")) <= SIGNIFICANT_DIGITS
    assert rounded(dims, {"lr": 0.0099999999, "c": 2})["lr"] == 0.01  # rounded, still inside the bounds


def test_verify_agrees_exactly_then_names_a_tampered_record(tmp_path, image_folder, capsys):
    path = write_config(tmp_path / "exp.yaml", image_folder)
    assert main(["run", str(path), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["verify", str(path), "--runs", "2", "--quiet", "--scratch", str(tmp_path / "s1")]) == 0
    out = capsys.readouterr().out
    assert "2 runs agree with their records exactly" in out and "test_accuracy" in out
    checked = pd.read_csv(tmp_path / "s1" / "verify.csv")
    assert checked["run_id"].nunique() == 2 and checked["agrees"].all() and (checked["difference"] == 0).all()
    # the original output folder is untouched: the re-training happened in the scratch folder
    target = checked["run_id"].iloc[0]
    record_path = tmp_path / "out" / "runs" / target / "record.json"
    record = json.loads(record_path.read_text())
    value = record["test_accuracy"]  # one last-bit-sized change must be caught (inside [0, 1]: a record is checked)
    record["test_accuracy"] = value + 1e-9 if value < 1 else value - 1e-9
    record_path.write_text(json.dumps(record))
    assert main(["verify", str(tmp_path / "out"), "--only", f"run_id={target}", "--quiet",
                 "--scratch", str(tmp_path / "s2")]) == 1
    captured = capsys.readouterr()
    assert "NO" in captured.out and "1 of 1 runs differ" in captured.err
    bad = pd.read_csv(tmp_path / "s2" / "verify.csv").query("not agrees")
    assert bad["metric"].tolist() == ["test_accuracy"]


def test_verify_bad_input_is_one_line_and_writes_nothing(tmp_path, image_folder, capsys):
    path = write_config(tmp_path / "exp.yaml", image_folder)
    assert main(["verify", str(path), "--quiet"]) == 2  # nothing recorded yet
    assert "no finished run" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nope"), "--quiet"]) == 2
    assert main(["verify", str(path), "--runs", "0"]) == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("user's")
    assert main(["run", str(path), "--quiet", "--only", "fold=0", "method=ce"]) == 0
    assert main(["verify", str(path), "--scratch", str(tmp_path / "full"), "--quiet"]) == 2
    assert (tmp_path / "full" / "mine.txt").read_text() == "user's" and len(list((tmp_path / "full").iterdir())) == 1
