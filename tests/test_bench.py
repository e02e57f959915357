"""`python -m benchmark bench`: runs on tiny data, reports sane positive figures, times the training code path."""

from __future__ import annotations

import json
import math

import pytest

from benchmark import numerics
from benchmark.cli import main
from benchmark.train import Trainer, resolve_device
from tests.helpers import make_image_folder

TINY = ["--backbone", "tiny_cnn", "--image-size", "16", "--quiet"]


def _bench(tmp_path, image_folder, *extra: str) -> dict:
    out = tmp_path / "bench.json"
    assert main(["bench", "--data", str(image_folder), *TINY, "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_throughput_figures_are_positive_and_consistent(tmp_path, image_folder, capsys):
    result = _bench(tmp_path, image_folder, "--batch-size", "4", "--steps", "4", "--warmup", "1")
    table = capsys.readouterr().out
    assert "pipeline efficiency" in table and "evaluation images/s" in table and "peak RSS" in table
    prep, train, evaluation = result["preparation"], result["train"], result["eval"]
    assert prep["n_images"] == 36 and prep["raw_uint8_bytes"] == 36 * 16 * 16 * 3
    assert 1.0 <= prep["cache_to_raw"] <= 1.2 and prep["decode_cold_s"] > 0
    assert (prep["n_train"], prep["n_val"]) == (round(0.7 * 36), round(0.15 * 36))
    for key in ("pipeline_images_per_s", "ceiling_images_per_s", "pipeline_efficiency"):
        assert math.isfinite(train[key]) and train[key] > 0, key
    assert train["pipeline_images_per_s"] == pytest.approx(4 / train["pipeline_step_s"])
    assert train["timed_steps"] >= 4
    assert evaluation["images_per_s"] == pytest.approx(evaluation["n_images"] / evaluation["seconds"])
    assert evaluation["eval_to_train"] == pytest.approx(evaluation["images_per_s"] / train["pipeline_images_per_s"])
    assert result["memory"]["peak_rss_mib"] > 0
    assert result["device"] == str(resolve_device("auto")) and len(result["machine"]["load_average"]) == 3
    assert ("cuda_max_allocated_mib" in result["memory"]) == (result["device"] == "cuda")
    # bench measures what runs use: portable numerics by default, stated in its title and JSON
    env = result["environment"]
    assert env["numerics"] == numerics.effective_mode("portable") and env["threads"] == 1
    if env["numerics"] == "portable":
        assert env["aten_capability"] == "AVX2" and env["mkl_branch"] in ("AVX2,STRICT", "none")
        assert "numerics portable (ATen AVX2" in table


def test_real_path_is_the_training_step_of_train_run(tmp_path, image_folder, monkeypatch):
    calls = {"train_step": 0, "fit_batch": 0}
    real_step, real_fit = Trainer.train_step, Trainer.fit_batch

    def counting_step(self, *args):
        calls["train_step"] += 1
        return real_step(self, *args)

    def counting_fit(self, *args):
        calls["fit_batch"] += 1
        return real_fit(self, *args)

    monkeypatch.setattr(Trainer, "train_step", counting_step)
    monkeypatch.setattr(Trainer, "fit_batch", counting_fit)
    result = _bench(tmp_path, image_folder, "--batch-size", "4", "--steps", "8", "--warmup", "2")
    timed = result["train"]["timed_steps"]
    assert calls["train_step"] == timed + 2
    assert calls["fit_batch"] == 2 * (timed + 2)


def test_reference_epoch_compares_two_positive_times(tmp_path, image_folder, capsys):
    result = _bench(tmp_path, image_folder, "--reference-epoch")
    assert "speed-up, reference / ours" in capsys.readouterr().out
    epoch = result["epoch"]
    assert epoch["reference"]["epoch_s"] > 0 and epoch["ours"]["epoch_s"] > 0
    assert epoch["speedup"] == pytest.approx(epoch["reference"]["epoch_s"] / epoch["ours"]["epoch_s"])
    assert result["settings"]["batch_size"] == 8 and result["settings"]["augment"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent/folder"], "--data /nonexistent/folder"),
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--augment", "hflip,twist"], "unknown twist"),
        (["--backbone", "resnet81"], "unknown backbone"),
        (["--batch-size", "64"], "larger than the training part"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, image_folder, capsys, args, message):
    base = ["bench", "--data", str(image_folder), *TINY, "--steps", "1", "--warmup", "0"]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_binary_classes_need_a_normal_folder(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "data", {"good": 10, "bad": 10})
    assert main(["bench", "--data", str(folder), *TINY, "--steps", "1"]) == 2
    assert "needs a 'normal' folder" in capsys.readouterr().err
