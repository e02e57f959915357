"""One owner per run folder: structured record.json read in both formats, one flattening into the tidy table,
train_run writing no file of its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.record import RunRecord
from benchmark.store import Store, load_results
from tests.helpers import augmented_experiment, write_config

REPO = Path(__file__).resolve().parent.parent
RECORDS = sorted((REPO / "reports" / "archive").glob("*/records/runs"))  # written by older versions (old format)
STRUCTURED = {"method_params": dict, "task_classes": list, "versions": dict}


def _new_format(record: dict) -> RunRecord:
    """The record as this version writes it: JSON values instead of JSON text, no config_hash."""
    new = {k: v for k, v in record.items() if k != "config_hash"}
    return RunRecord.from_json(new | {key: json.loads(record[key]) for key in STRUCTURED})


@pytest.mark.parametrize("records", RECORDS, ids=[p.parent.parent.name for p in RECORDS])
def test_committed_records_give_their_committed_results_csv_byte_for_byte(records):
    folder = records.parent
    assert load_results(folder).to_csv(index=False) == (folder / "results.csv").read_text()


@pytest.mark.parametrize("records", RECORDS, ids=[p.parent.parent.name for p in RECORDS])
def test_a_new_format_record_gives_the_same_row_as_the_old_format_one(records, tmp_path):
    old_paths = sorted(records.glob("*/record.json"))
    old = [json.loads(p.read_text()) for p in old_paths]
    assert all(isinstance(r["method_params"], str) and "config_hash" in r for r in old)  # written by older versions
    store = Store(tmp_path / "new")
    for record in old:
        store.write_record(_new_format(record))
    assert load_results(store.root).to_csv(index=False) == load_results(records.parent).to_csv(index=False)
    mixed = Store(tmp_path / "mixed")  # half the runs in each format: still one table
    for i, (path, record) in enumerate(zip(old_paths, old)):
        if i % 2:
            mixed.write_record(_new_format(record))
        else:
            mixed.run(record["run_id"]).path.mkdir(parents=True)
            shutil.copy(path, mixed.run(record["run_id"]).record_path)
    assert load_results(mixed.root).to_csv(index=False) == load_results(records.parent).to_csv(index=False)


def test_old_format_records_are_read_as_structured_records():
    old = next(iter(RECORDS))
    record = Store(old.parent).records()[0]
    for key, kind in STRUCTURED.items():
        assert isinstance(record[key], kind), key


def test_new_records_hold_json_values_and_no_config_hash(tmp_path, image_folder):
    path = write_config(tmp_path / "exp.yaml", image_folder, methods=[{"name": "alpha_js", "beta": 1.5}],
                        train={"epochs": 1})
    assert main(["run", str(path), "--only", "fold=0", "--quiet"]) == 0
    record = json.loads(next((tmp_path / "out" / "runs").glob("*/record.json")).read_text())
    assert record["method_params"]["beta"] == 1.5 and isinstance(record["versions"], dict)
    assert isinstance(record["task_classes"], list) and len(record["task_classes"]) == 2
    assert "config_hash" not in record
    row = load_results(tmp_path / "out").iloc[0]
    assert row["config_hash"] == record["run_id"] and json.loads(row["method_params"])["beta"] == 1.5


class MemoryCheckpoints:
    """Checkpoints kept in memory: what train_run saves, nothing on disk."""

    def __init__(self):
        self.saved: dict[str, dict] = {}

    def save_best(self, payload: dict) -> None:
        self.saved["best"] = payload

    def save_last(self, payload: dict) -> None:
        self.saved["last"] = payload

    def resume_state(self, device: torch.device, keys: tuple[str, ...]) -> dict | None:
        return None

    def discard_last(self, problem: str) -> None:
        raise AssertionError(problem)

    def load_best(self, device: torch.device) -> dict:
        return self.saved["best"]


def test_train_run_writes_no_file_itself_and_returns_the_predictions(tmp_path):
    from benchmark.config import load_config
    from benchmark.dataset import prepare
    from benchmark.plan import RunSpec
    from benchmark.train import train_run

    root, path = augmented_experiment(tmp_path / "exp")
    cfg = load_config(path, ["train.epochs=1"])
    prepared = prepare(cfg)
    before = sorted(p for p in tmp_path.rglob("*"))
    checkpoints = MemoryCheckpoints()
    result = train_run(RunSpec("r", "t", "ce", {}, "tiny_cnn", None, 0, 0, 0), cfg, prepared, checkpoints,
                       torch.device("cpu"), show_progress=False)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert set(checkpoints.saved) == {"best", "last"}
    assert len(result.predictions) == len(prepared.folds[0].test)
