"""The typed run record: every committed record loads through it, impossible numbers never reach a table, the docs
list every field it has."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from benchmark.metrics import classification_metrics
from benchmark.record import RunRecord, flat_keys, parse_record
from benchmark.report.load import _load
from benchmark.store import Store, load_results

REPO = Path(__file__).resolve().parent.parent
COMMITTED = sorted(REPO.glob("reports/**/runs/*/record.json"))


def test_every_committed_record_loads_through_the_typed_record():
    assert len(COMMITTED) >= 100
    for path in COMMITTED:
        raw = json.loads(path.read_text())
        record, problem = parse_record(raw)
        assert record is not None, f"{path}: {problem}"
        new_shape = {k: v for k, v in raw.items() if k != "config_hash"}
        if not isinstance(raw["method_params"], str):  # written in the current shape: the same JSON back
            assert record.to_json() == new_shape and list(record.to_json()) == list(new_shape)


def _record(**changes) -> dict:
    """A whole binary record whose metrics come from scikit-learn-backed `classification_metrics`."""
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 1, 1])
    test = classification_metrics(probs, labels, 1)
    val = {k: v for k, v in classification_metrics(probs, labels, 1).items() if k != "confusion"}
    raw = {"experiment": "e", "run_id": "abc123abc123", "method": "ce", "method_params": {}, "method_label": "ce",
           "backbone": "tiny_cnn", "fold": 0, "repeat": 0, "seed": 0, "task_classes": ["a", "b"], "positive": "b",
           "status": "done", "error": ""}
    raw |= {f"test_{k}": v for k, v in test.items()} | {f"val_{k}": v for k, v in val.items()} | {"val_loss": 0.4}
    raw |= {"selected_epoch": 1, "epochs_run": 1, "n_train": 8, "n_val": 4, "n_test": 4, "resolved_config": {},
            "dataset_fingerprint": "d", "folds_fingerprint": "f", "git_commit": "c", "git_dirty": False,
            "versions": {}, "environment": None, "device": "cpu", "wall_time_s": 1.0, "finished_at": "t"}
    return raw | changes


@pytest.mark.parametrize("key, value", [
    ("test_accuracy", 7.5), ("test_f1", -0.01), ("val_macro_f1", 1.0001), ("test_auroc", 1.5), ("test_ece", 1.2),
    ("test_brier", 2.5), ("test_nll", -0.1), ("val_entropy", -1e-3), ("test_entropy", math.log(2) + 0.01),
    ("test_accuracy", math.nan), ("test_nll", math.inf), ("val_loss", math.nan), ("test_confusion", [[1, 1], [1, 2]]),
    ("test_confusion", [[4]]), ("fold", "0"), ("status", "running"), ("test_precision", "0.5"),
])
def test_an_impossible_value_makes_the_record_damaged(key, value):
    record, problem = parse_record(_record(**{key: value}))
    assert record is None and key.split("_", 1)[-1].split(".")[0] in problem or key in problem, problem


@pytest.mark.filterwarnings("ignore:A single label was found")
def test_the_extremes_of_real_predictions_are_possible():
    """Independent of the ranges: the worst and the flattest predictions `classification_metrics` can give load."""
    wrong = classification_metrics(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1, 0]), 1)  # Brier = 2
    flat = classification_metrics(np.full((2, 2), 0.5), np.array([0, 1]), 1)  # entropy = log 2
    one_class = classification_metrics(np.array([[0.2, 0.8], [0.4, 0.6]]), np.array([1, 1]), 1)  # AUROC undefined
    assert wrong["brier"] == pytest.approx(2.0) and flat["entropy"] == pytest.approx(math.log(2))
    assert math.isnan(one_class["auroc"])
    for metrics in (wrong, flat, one_class):
        raw = _record(**{f"test_{k}": v for k, v in metrics.items()}, n_test=2)
        assert parse_record(raw)[0] is not None, parse_record(raw)[1]


def test_a_damaged_record_is_named_once_and_left_out_of_every_table(tmp_path, capsys):
    store = Store(tmp_path)
    good = _record()
    store.write_record(good)
    tampered = _record(run_id="def456def456")
    path = store.run("def456def456").record_path
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(tampered | {"test_accuracy": 7.5}))
    table = load_results(tmp_path)
    assert list(table["run_id"]) == ["abc123abc123"]
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and str(path) in err and "test_accuracy" in err and "7.5" in err
    results, _ = _load(tmp_path)
    assert results["test_accuracy"].max() <= 1.0


def test_old_shapes_migrate_to_the_same_record():
    new = _record(method="focal", method_params={"gamma": 2.0}, method_label="focal(gamma=2.0)")
    old = new | {"method_params": '{"gamma": 2.0}', "task_classes": '["a", "b"]', "versions": "{}",
                 "config_hash": new["run_id"], "param_gamma": 2.0}
    assert RunRecord.from_json(old) == RunRecord.from_json(new)
    assert RunRecord.from_json(new).to_json()["param_gamma"] == 2.0


def test_the_docs_list_every_record_field():
    text = (REPO / "docs" / "results-schema.md").read_text()
    section = text.split("## `results.csv` columns", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+(?:<[^>]*>)?)`", section))
    wanted = {key.replace("<...>", "") for key in flat_keys()}
    missing = [key for key in wanted if not any(d.startswith(key) for d in documented)]
    assert not missing, f"docs/results-schema.md lacks the record fields {missing}"


def test_method_labels_in_the_docs_are_the_labels_runs_get():
    """Every `name(k=v, ...)` of a registered method shown in docs/ is the label its run would carry (README.md: the
    lead's to fix, see the arch branch's report)."""
    import methods
    from benchmark.plan import method_params
    from benchmark.record import method_label

    names = set(methods.list_methods())
    shown = []
    for page in sorted((REPO / "docs").glob("*.md")):
        for name, inner in re.findall(r"`([a-z_]+)\(([a-z_]+=[^`()]*)\)`", page.read_text()):
            if name in names:
                given = {k: yaml_value(v) for k, v in (pair.split("=", 1) for pair in inner.split(", "))}
                shown.append((page.name, f"{name}({inner})", method_label(name, method_params(name, given))))
    assert shown and [s for s in shown if s[1] != s[2]] == []


def yaml_value(text: str):
    import yaml

    return yaml.safe_load(text)
