"""Experiment files: load, apply --set overrides, validate strictly, resolve paths."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import UserError
from benchmark.schema import Field, Section, at_least, open_interval, positive, validate

AUGMENTATIONS = ("hflip", "vflip", "rot90")
SELECT_BY = ("val_f1", "val_accuracy", "val_macro_f1", "val_loss", "last")
DATASET_URL = "github.com/furkanulger/solder-joint-dataset"


def _device_check(value: str) -> str | None:
    if value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
        return None
    return "allowed: auto | cpu | cuda | cuda:N | mps"


def _workers_check(value: int | str) -> str | None:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return None
    return "allowed: an integer ≥ 1 or 'auto'"


def _int_list(value: list) -> str | None:
    return None if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value) else "must be a non-empty list of integers"


def _regex_check(value: str) -> str | None:
    if value == "duplicates":
        return None
    try:
        compiled = re.compile(value)
    except re.error as exc:
        return f"not a valid regular expression ({exc})"
    return None if compiled.groups >= 1 else "needs one capturing group, e.g. '(normal_b\\d)', or the value 'duplicates'"


def _methods_check(value: list) -> str | None:
    for item in value:
        if isinstance(item, str):
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return "each entry must be a method name or a mapping with a 'name' key (other keys: its parameters)"
    return None if value else "must list at least one method"


def _backbones_check(value: list) -> str | None:
    for item in value:
        if isinstance(item, str):
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or set(item) - {"name", "weights"}:
            return "each entry must be a backbone name or a mapping with keys name and optional weights (a local file)"
    return None if value else "must list at least one backbone"


def _classes_check(value: dict) -> str | None:
    for label, folders in value.items():
        if not isinstance(folders, list) or not folders or not all(isinstance(f, str) for f in folders):
            return f"class {label!r} must map to a non-empty list of folder names"
    return None if len(value) >= 2 else "needs at least two classes"


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")

SCHEMA = Section(
    {
        "name": Field((str,), required=True, doc="experiment name (used for output and report folders)"),
        "plugins": Field((list,), default=[], doc="modules or .py files that register more methods"),
        "data": Section(
            {
                "root": Field((str,), required=True, doc="a folder, or 'synthetic'"),
                "layout": Field((str,), default="folders", choices=("folders", "split")),
                "classes": Field((dict,), nullable=True, check=_classes_check),
                "positive": Field((str,), nullable=True, doc="class for F1/precision/recall (default: the second class)"),
                "image_size": Field((int,), default=84, check=at_least(8)),
                "resize": Section(
                    {
                        "policy": Field((str,), default="stretch", choices=("stretch", "letterbox", "via")),
                        "via": Field((int,), nullable=True, check=at_least(4)),
                    }
                ),
                "augment": Field((list,), default=[], choices=AUGMENTATIONS),
                "on_bad_file": Field((str,), default="skip", choices=("skip", "error")),
                "synthetic": Section(
                    {
                        "n": Field((int,), default=1000, check=at_least(10)),
                        "seed": Field((int,), default=0),
                        "size": Field((int,), default=64, check=at_least(16)),
                        "normal_fraction": Field((float,), default=0.8, check=open_interval(0, 1)),
                    }
                ),
            }
        ),
        "protocol": Section(
            {
                "kind": Field((str,), default="kfold", choices=("kfold", "fixed")),
                "folds": Field((int,), default=5, check=at_least(2)),
                "repeats": Field((int,), default=1, check=at_least(1)),
                "stratify": Field((bool,), default=True),
                "group_by": Field((str,), nullable=True, check=_regex_check,
                                  doc="regex on file names (first group = group id), or 'duplicates'"),
                "val_fraction": Field((float,), default=0.15, check=open_interval(0, 1)),
                "select_by": Field((str,), default="val_f1", choices=SELECT_BY),
                "seed": Field((int,), default=42),
            }
        ),
        "train": Section(
            {
                "epochs": Field((int,), default=100, check=at_least(1)),
                "batch_size": Field((int,), default=64, check=at_least(1)),
                "eval_batch_size": Field((int,), default=256, check=at_least(1)),
                "optimizer": Section(
                    {
                        "name": Field((str,), default="adam", choices=("adam", "adamw", "sgd")),
                        "lr": Field((float,), default=1e-4, check=positive),
                        "weight_decay": Field((float,), default=1e-3, check=at_least(0)),
                        "momentum": Field((float,), default=0.9, check=at_least(0)),
                    }
                ),
                "scheduler": Section(
                    {
                        "name": Field((str,), default="cosine", choices=("cosine", "step")),
                        "step_size": Field((int,), default=30, check=at_least(1)),
                        "gamma": Field((float,), default=0.1, check=positive),
                    },
                    nullable=True,
                    default_null=True,
                ),
                "early_stopping": Section(
                    {"patience": Field((int,), default=15, check=at_least(1))}, nullable=True, default_null=True
                ),
                "channels_last": Field((bool,), default=True, doc="memory format; does not change results"),
                "amp": Field((bool,), default=False, doc="mixed precision (bf16 on CPU, fp16 on CUDA)"),
                "deterministic": Field((bool,), default=False,
                                       doc="CUDA: deterministic cuDNN/cuBLAS kernels, so a GPU run repeats exactly; slower"),
                "compile": Field((bool,), default=False, doc="torch.compile the model"),
                "compile_mode": Field((str,), default="default", choices=COMPILE_MODES,
                                      doc="torch.compile mode; reduce-overhead and max-autotune use CUDA graphs on a GPU"),
                "threads": Field((int,), nullable=True, check=at_least(1), doc="torch threads (default: all cores)"),
            }
        ),
        "methods": Field((list,), required=True, check=_methods_check),
        "backbones": Field((list,), required=True, check=_backbones_check),
        "seeds": Field((list,), default=[0], check=_int_list),
        "run": Section(
            {
                "executor": Field((str,), default="local", choices=("local", "ray")),
                "workers": Field((int, str), default=1, check=_workers_check,
                                 doc="local executor: runs trained at once, or 'auto' (cores ÷ train.threads)"),
                "device": Field((str,), default="auto", check=_device_check),
                "output": Field((str,), nullable=True, doc="default runs/<name>"),
                "ray": Section(
                    {
                        "address": Field((str,), nullable=True),
                        "num_cpus_per_run": Field((float,), default=1.0, check=positive),
                        "num_gpus_per_run": Field((float,), default=0.0, check=at_least(0)),
                        "max_retries": Field((int,), default=1, check=at_least(0)),
                    }
                ),
            }
        ),
    }
)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-4 (no dot) as a number, as YAML 1.2 and every user expects."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.epochs=10` -> (['train', 'epochs'], 10); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. train.epochs=10")
    key, raw = text.split("=", 1)
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(f"--set {text!r}: value is not valid YAML ({exc.problem})") from None
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides: list[str], where: str) -> dict:
    out = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise UserError(f"{where}: --set {text}: {key} is not a mapping")
            node = child
        node[keys[-1]] = value
    return out


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"experiment file {path} does not exist")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: malformed YAML{at}: {problem}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return raw


def resolve_data_root(root: str, config_dir: Path, where: str) -> Path | str:
    """A folder relative to the experiment file, then the working directory, then $SOLDERBENCH_DATA."""
    if root == "synthetic":
        return root
    candidates = [Path(root).expanduser()] if Path(root).expanduser().is_absolute() else [config_dir / root, Path.cwd() / root]
    env = os.environ.get("SOLDERBENCH_DATA")
    if env:
        candidates += [Path(env) / root, Path(env) / Path(root).name, Path(env)]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise UserError(
        f"{where}: data.root {root!r} not found (looked in: {looked}). Get the public dataset from {DATASET_URL} "
        "and point data.root or $SOLDERBENCH_DATA at it; experiments/quick.yaml needs no data (data.root: synthetic)"
    )


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Read, override, validate; returns the resolved config with `_file` and `_dir` keys added."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), list(overrides), str(path))
    cfg = validate(raw, SCHEMA, str(path), "")
    where = str(path)
    if cfg["data"]["resize"]["policy"] == "via" and not cfg["data"]["resize"]["via"]:
        raise UserError(f"{where}: data.resize.via: policy 'via' needs a resolution, e.g. via: 24")
    if cfg["protocol"]["kind"] == "fixed" and cfg["data"]["layout"] != "split":
        raise UserError(f"{where}: protocol.kind: 'fixed' needs data.layout: split")
    cfg["data"]["root"] = str(resolve_data_root(cfg["data"]["root"], path.parent.resolve(), where))
    if cfg["run"]["output"] is None:
        cfg["run"]["output"] = f"runs/{cfg['name']}"
    cfg["_file"] = str(path)
    cfg["_dir"] = str(path.parent.resolve())
    return cfg


def public(cfg: dict) -> dict:
    """The config without the private `_file`/`_dir` keys (what is saved as config.resolved.yaml)."""
    return {k: v for k, v in cfg.items() if not k.startswith("_")}
