"""The run record: one typed definition of what `record.json` holds, read in every shape it was ever written in.

`RunRecord` is the only place a record field is named. Writers build one (`benchmark.execution.make_record`), the
run folder writes its flat JSON (`to_json`), readers parse a file back (`from_json`: migration of older shapes, then
validation of every type and every metric's range), and the tidy table's row is flattened from it (`row`). A record
that fails validation is a damaged file (see docs/results-schema.md): named in one warning, never averaged.

On disk a record is one flat JSON object: the fields below in this order, with four groups spread into prefixed keys
(`param_<name>` repeats `method_params`, `set_<key>` the tuning overrides, `test_<metric>` and `val_<metric>`).
Older records hold `method_params`, `task_classes`, `versions`, `tune_params` as JSON text and carry `config_hash`
(= `run_id`): `from_json` reads them the same. Optional fields a record lacks stay absent (`model_fields_set`), so
an old record gives the same row as before.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchmark.errors import brief

# Fields older records hold as JSON text inside the JSON.
JSON_TEXT = ("method_params", "task_classes", "versions", "tune_params", "environment")
# Prefixed flat keys ↔ the dict field holding them (param_* is derived from method_params and never read back).
GROUPS = {"set_": "overrides", "test_": "test", "val_": "val"}
DERIVED = ("param_", "config_hash")
# Values a metric can take: (low, high); NaN only where the metric is undefined (AUROC with one class present).
UNIT = (0.0, 1.0)
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": UNIT, "balanced_accuracy": UNIT, "precision": UNIT, "recall": UNIT, "f1": UNIT, "macro_f1": UNIT,
    "auroc": UNIT, "ece": UNIT, "brier": (0.0, 2.0), "nll": (0.0, math.inf), "entropy": (0.0, math.inf),
    "loss": (-math.inf, math.inf),
}
MAY_BE_NAN = ("auroc",)
# Keys the table's readers need (report/load.py): the identity of a run and its status.
IDENTITY = ("run_id", "method", "method_label", "backbone", "fold", "repeat", "seed", "status")
SORTED_KEYS = ("method_params", "tune_params")  # JSON text with sorted keys in the tidy table


def method_label(method: str, params: dict) -> str:
    """`alpha_js(alpha=0.5, beta=1.0, variant=correct)`, or just the name when the method has no parameters."""
    return method if not params else f"{method}({', '.join(f'{k}={v}' for k, v in params.items())})"


class RunRecord(BaseModel):
    """One finished run (done or failed): identity, status, tuning trial, metrics, provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    experiment: str = Field(description="experiment name")
    run_id: str = Field(description="12 hex: sha256 of the resolved run config")
    method: str = Field(description="registry name, e.g. alpha_js")
    method_params: dict[str, Any] = Field(description="the method's parameters, defaults filled in (param_<name>)")
    method_label: str = Field(description="method with its parameters, e.g. alpha_js(alpha=0.5, beta=1.0, ...)")
    backbone: str = Field(description="backbone name (timm:NAME for timm)")
    fold: int = Field(ge=0, description="0-based outer fold")
    repeat: int = Field(ge=0, description="0-based k-fold repeat")
    seed: int = Field(ge=0, description="training seed")
    task_classes: list[str] = Field(description="class names, index = label")
    positive: str = Field(description="the positive class (F1, precision, recall)")
    status: Literal["done", "failed"] = Field(description="done or failed")
    error: str = Field("", description="exception type and first line of a failed run; empty when done")
    tune_trial: int | None = Field(None, ge=0, description="tuning trials: 0-based trial number in its study")
    tune_budget: int | None = Field(None, ge=1, description="tuning trials: the study's number of trials")
    tune_params: dict[str, Any] | None = Field(None, description="tuning trials: the drawn values")
    tune_metric: str | None = Field(None, description="tuning trials: the inner-validation score ranking them")
    overrides: dict[str, Any] = Field(default_factory=dict, description="tuning trials: drawn train.* keys (set_<key>)")
    test: dict[str, float | list[list[int]]] = Field(
        default_factory=dict, description="metrics on the held-out fold (test_<metric>, test_confusion)")
    val: dict[str, float] = Field(
        default_factory=dict, description="metrics on the inner validation part at the selected epoch (val_<metric>)")
    selected_epoch: int | None = Field(None, ge=1, description="1-based epoch whose model was tested")
    epochs_run: int | None = Field(None, ge=0, description="epochs trained")
    n_train: int | None = Field(None, ge=0, description="training images")
    n_val: int | None = Field(None, ge=0, description="inner validation images")
    n_test: int | None = Field(None, ge=0, description="test images")
    resolved_config: dict[str, Any] = Field(description="the resolved run config whose sha256 is the run id")
    dataset_fingerprint: str = Field(description="fingerprint of the image files the run saw")
    folds_fingerprint: str = Field(description="fingerprint of the fold assignment")
    git_commit: str | None = Field(description="the code's commit")
    git_dirty: bool | None = Field(description="uncommitted changes to tracked files")
    versions: dict[str, Any] = Field(description="python and the number-changing libraries, digest of the stack")
    environment: dict[str, Any] | None = Field(
        None, description="numerics of the process that trained it (mode, threads, CPU, kernels; null: unknown)")
    device: str = Field(description="torch device (or the executor for a run that died there)")
    wall_time_s: float = Field(ge=0, description="seconds the run took")
    finished_at: str = Field(description="ISO 8601 UTC")
    extra: dict[str, Any] = Field(default_factory=dict, description="keys of a newer version, kept as they are")

    @model_validator(mode="after")
    def check_ranges(self) -> RunRecord:
        """Every metric in its range (finite but where undefined), the confusion matrix K × K summing to n_test."""
        k = len(self.task_classes)
        for part, metrics in (("test", self.test), ("val", self.val)):
            for name, value in metrics.items():
                if name == "confusion":
                    _check_confusion(value, k, self.n_test)
                    continue
                if isinstance(value, list):
                    raise ValueError(f"{part}_{name}: a list where a number is due")
                low, high = METRIC_RANGES.get(name, (-math.inf, math.inf))
                if name == "entropy" and k >= 2:
                    high = math.log(k) + 1e-9  # at most log K nats
                if math.isnan(value) and name in MAY_BE_NAN:
                    continue
                if not (math.isfinite(value) and low <= value <= high):
                    raise ValueError(f"{part}_{name}: {value} is impossible (allowed: a finite number in "
                                     f"[{low:g}, {high:g}])")
        return self

    # The flat JSON layout.
    @classmethod
    def from_json(cls, raw: dict) -> RunRecord:
        """A record from its flat JSON object, any shape it was written in (raises `ValueError` when impossible)."""
        fields: dict[str, Any] = {}
        for key, value in raw.items():
            prefix = next((p for p in GROUPS if key.startswith(p)), None)
            if prefix is not None:
                fields.setdefault(GROUPS[prefix], {})[key[len(prefix):]] = value
            elif key.startswith(DERIVED):
                continue
            elif key in cls.model_fields and key not in (*GROUPS.values(), "extra"):
                fields[key] = _from_text(value) if key in JSON_TEXT else value
            else:
                fields.setdefault("extra", {})[key] = value
        return cls.model_validate(fields)

    def to_json(self) -> dict[str, Any]:
        """The flat JSON object written to record.json (fields a record lacks stay out)."""
        out: dict[str, Any] = {}
        given = self.model_fields_set
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in GROUPS.values():
                prefix = next(p for p, field in GROUPS.items() if field == name)
                out.update({f"{prefix}{k}": v for k, v in value.items()})
            elif name == "extra":
                out.update(value)
            elif name in given:
                out[name] = value
            if name == "method_label":
                out.update({f"param_{k}": v for k, v in self.method_params.items()})
        return out

    def row(self) -> dict[str, Any]:
        """The record's row of the tidy table (results.csv): nested values as JSON text, `config_hash` = run_id."""
        row: dict[str, Any] = {}
        for key, value in self.to_json().items():
            if key == "resolved_config":
                row["config_hash"] = self.run_id
            if isinstance(value, (dict, list)):
                value = json.dumps(value, default=json_default, sort_keys=key in SORTED_KEYS)
            row[key] = value
        return row

    # Read-only mapping access to the flat keys, for code that reads a record like the JSON object (trackers, verify).
    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    def keys(self):
        return self.to_json().keys()

    def items(self):
        return self.to_json().items()


def _check_confusion(value: Any, k: int, n_test: int | None) -> None:
    if not (isinstance(value, list) and len(value) == k and all(isinstance(r, list) and len(r) == k for r in value)):
        raise ValueError(f"test_confusion: not a {k} × {k} matrix")
    if any(c < 0 for r in value for c in r) or (n_test is not None and sum(map(sum, value)) != n_test):
        raise ValueError(f"test_confusion: counts must be ≥ 0 and sum to n_test ({n_test})")


def _from_text(value: Any) -> Any:
    """A field an older version wrote as JSON text, as its JSON value (text that is not JSON stays text)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def json_default(value: Any) -> Any:
    """NumPy scalars and arrays as Python values, anything else as its text."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def parse_record(raw: Any) -> tuple[RunRecord | None, str]:
    """A record and '' from a loaded JSON value; else None and what is wrong, in one line."""
    if not isinstance(raw, dict):
        return None, f"holds a JSON {type(raw).__name__}, not a record"
    missing = [key for key in IDENTITY if key not in raw]
    if missing:
        return None, f"is not a whole record (no {', '.join(missing)})"
    try:
        return RunRecord.from_json(raw), ""
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "value_error":
            return None, f"holds an impossible value ({error['msg'].removeprefix('Value error, ')})"
        return None, f"holds a wrong value ({where}: {error['msg']}, got {brief(error.get('input'))})"


def flat_keys() -> list[str]:
    """Every flat key name a record can have, prefixed groups as `param_<name>`, `test_<metric>`... (for the docs)."""
    out = []
    for name in RunRecord.model_fields:
        if name in GROUPS.values():
            out.append(next(p for p, field in GROUPS.items() if field == name) + "<...>")
        elif name != "extra":
            out.append(name)
        if name == "method_label":
            out.append("param_<...>")
    return out
