"""Experiment files: load, apply --set overrides, validate strictly, resolve paths."""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import ECHO_LIMIT, UserError, brief, safe_name
from benchmark.schema import Field, Section, at_least, int_range, open_interval, positive, validate

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


SEED_MAX = 2**32 - 1  # NumPy and scikit-learn take seeds in 0..2**32-1


def _seed_list(value: list) -> str | None:
    if value and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= SEED_MAX for v in value):
        return None
    return f"must be a non-empty list of integers in 0..{SEED_MAX}"


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
    owner: dict[str, object] = {}
    for label, folders in value.items():
        if not isinstance(folders, list) or not folders or not all(isinstance(f, str) for f in folders):
            return f"class {brief(label)} must map to a non-empty list of folder names"
        for folder in folders:
            if folder in owner:
                other = "twice in the same class" if owner[folder] == label else f"in two classes, {brief(owner[folder])} and"
                return f"folder {brief(folder)} is listed {other} {brief(label)}; each folder may belong to one class"
            owner[folder] = label
    return None if len(value) >= 2 else "needs at least two classes"


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
TRACKERS = ("mlflow", "tensorboard")
SAMPLERS = ("tpe", "random", "grid")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")


def _space_check(value: dict) -> str | None:
    """Each entry: KEY (train.optimizer.lr or METHOD.PARAM) → {uniform|log_uniform|int: [low, high]} or {choice: [...]}."""
    for key, dist in value.items():
        if not isinstance(key, str) or "." not in key:
            return f"key {brief(key)} must be a dotted name: train.optimizer.lr or METHOD.PARAM (e.g. alpha_js.beta)"
        if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            return (f"{key}: expected one of {{uniform: [low, high]}}, {{log_uniform: [low, high]}}, "
                    "{int: [low, high]}, {choice: [values]}")
        kind, bounds = next(iter(dist.items()))
        if kind == "choice":
            if not isinstance(bounds, list) or not bounds:
                return f"{key}: choice needs a non-empty list of values"
            continue
        numbers_ok = isinstance(bounds, list) and len(bounds) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
        if not numbers_ok or not bounds[0] < bounds[1]:
            return f"{key}: {kind} needs [low, high] with low < high"
        if kind == "log_uniform" and bounds[0] <= 0:
            return f"{key}: log_uniform needs low > 0"
        if kind == "int" and not all(isinstance(b, int) for b in bounds):
            return f"{key}: int needs integer bounds"
    return None


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
                        "seed": Field((int,), default=0, check=int_range(0, SEED_MAX)),
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
                "seed": Field((int,), default=42, check=int_range(0, SEED_MAX)),
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
        "seeds": Field((list,), default=[0], check=_seed_list),
        "tune": Section(
            {
                "trials": Field((int,), default=8, check=at_least(1), doc="trials per method and fold (the budget)"),
                "sampler": Field((str,), default="tpe", choices=SAMPLERS, doc="Optuna sampler"),
                "seed": Field((int,), default=0, check=int_range(0, SEED_MAX)),
                "space": Field((dict,), default={}, check=_space_check,
                               doc="extra or overriding search dimensions: train.* keys for every method, METHOD.PARAM"),
            },
            nullable=True,
            default_null=True,
        ),
        "run": Section(
            {
                "executor": Field((str,), default="local", choices=("local", "ray")),
                "workers": Field((int, str), default=1, check=_workers_check,
                                 doc="local executor: runs trained at once, or 'auto' (cores ÷ train.threads)"),
                "device": Field((str,), default="auto", check=_device_check),
                "output": Field((str,), nullable=True, doc="default runs/<name>"),
                "trackers": Field((list,), default=[], choices=TRACKERS,
                                  doc="also log every run to MLflow and/or TensorBoard (optional extras)"),
                "tracking_uri": Field((str,), nullable=True,
                                      doc="MLflow tracking URI (default: an SQLite store in the output folder)"),
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


MAX_YAML_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class RefusedYaml(yaml.MarkedYAMLError):
    """YAML that parses but is ambiguous (a key given twice) or hostile (aliases that expand without bound)."""


def _key_text(loader: yaml.SafeLoader, key_node: yaml.Node) -> object:
    key = loader.construct_object(key_node, deep=True)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _check_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    """A key given twice in one mapping (merge keys `<<` excepted): the last one would silently win."""
    first: dict[object, yaml.Node] = {}
    for key_node, _value in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = _key_text(loader, key_node)
        if key is None:
            continue
        if key in first:
            raise RefusedYaml(None, None, f"key {brief(key)} is given twice (first at line "
                              f"{first[key].start_mark.line + 1}); keep one", key_node.start_mark)
        first[key] = key_node


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document holds once every alias is expanded (memoised: linear in the written nodes)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_YAML_VALUES + 1)
            continue
        if id(node) in open_nodes:
            raise RefusedYaml(None, None, "an alias refers to a value that contains it (a recursive alias)",
                              node.start_mark)
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise RefusedYaml(None, None, "an alias refers to a value that contains it (a recursive alias)",
                                  child.start_mark)
            stack.append((child, False))
    return sizes[id(root)]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-4 (no dot) as a number, as YAML 1.2 and every user expects; refuses a key given
    twice and aliases that expand to more than MAX_YAML_VALUES values ("billion laughs")."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        if node is not None and _expanded_size(node) > MAX_YAML_VALUES:
            raise RefusedYaml(None, None, f"aliases (*name) expand the document to more than {MAX_YAML_VALUES} "
                              "values; write the values out", node.start_mark)
        return node

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str):
    """Parse YAML text (a RecursionError from absurd nesting becomes a YAMLError)."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise yaml.YAMLError("values nested too deeply") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.epochs=10` -> (['train', 'epochs'], 10); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"--set {brief(text)}: expected KEY.PATH=VALUE, e.g. train.epochs=10")
    key, raw = text.split("=", 1)
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"--set {brief(text)}: value is not valid YAML ({problem})") from None
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
                raise UserError(f"{where}: --set {brief(text)}: {safe_name(key, ECHO_LIMIT)} is not a mapping")
            node = child
        node[keys[-1]] = value
    return out


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, RefusedYaml):
        return f"{path}: {at}: {problem}"
    return f"{path}: malformed YAML{' at ' + at if at else ''}: {problem}"


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"experiment file {path} does not exist")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise UserError(f"{path}: {size} bytes; an experiment file may hold at most {MAX_YAML_BYTES} bytes")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(_yaml_problem(path, exc)) from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the experiment file as UTF-8") from None
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


def _check_protocol_seed(protocol: dict, where: str) -> None:
    """k-fold seeds its splitters with seed + repeat and its validation splits with (seed + repeat) * 1000 + fold:
    every one must be a NumPy seed."""
    if protocol["kind"] != "kfold":
        return
    highest = (SEED_MAX - (protocol["folds"] - 1)) // 1000 - (protocol["repeats"] - 1)
    if protocol["seed"] > highest:
        raise UserError(
            f"{where}: protocol.seed: must be in 0..{max(highest, 0)} with protocol.folds={protocol['folds']} and "
            f"protocol.repeats={protocol['repeats']} (the validation splits are seeded with (seed + repeat) * 1000 + "
            f"fold, which must stay within NumPy's 0..{SEED_MAX}), got {protocol['seed']}"
        )


def _check_output_outside_data(cfg: dict, where: str) -> None:
    """An output folder inside the data folder would be scanned as data by the next run."""
    if cfg["data"]["root"] == "synthetic":
        return
    data, output = Path(cfg["data"]["root"]).resolve(), Path(cfg["run"]["output"]).expanduser().resolve()
    if output == data or data in output.parents:
        raise UserError(
            f"{where}: run.output: {safe_name(output)} is inside data.root {safe_name(data)}; its files would be read "
            "as images next time. Set run.output to a folder outside the data folder"
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
    _check_protocol_seed(cfg["protocol"], where)
    cfg["data"]["root"] = str(resolve_data_root(cfg["data"]["root"], path.parent.resolve(), where))
    if cfg["run"]["output"] is None:
        cfg["run"]["output"] = f"runs/{cfg['name']}"
    _check_output_outside_data(cfg, where)
    cfg["_file"] = str(path)
    cfg["_dir"] = str(path.parent.resolve())
    return cfg


def public(cfg: dict) -> dict:
    """The config without the private `_file`/`_dir` keys (what is saved as config.resolved.yaml)."""
    return {k: v for k, v in cfg.items() if not k.startswith("_")}
