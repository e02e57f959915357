"""Experiment files: load, apply --set overrides, validate strictly, resolve paths."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from benchmark.config_errors import error_text
from benchmark.errors import ECHO_LIMIT, UserError, brief, safe_name
from benchmark.experiment import SEED_MAX, Experiment, OutputRef, Protocol

DATASET_URL = "github.com/furkanulger/solder-joint-dataset"


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
        if keys[:2] == ["tune", "space"] and len(keys) > 3:
            keys = [*keys[:2], ".".join(keys[2:])]  # tune.space's own keys are dotted: train.optimizer.lr
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
    if path.is_dir():
        raise UserError(f"{path} is a folder without {RESOLVED}; give the experiment file (e.g. experiments/quick.yaml) "
                        "or an output folder that `run` wrote (runs/<name>)")
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


def _check_protocol_seed(protocol: Protocol, where: str) -> None:
    """k-fold seeds its splitters with seed + repeat and its validation splits with (seed + repeat) * 1000 + fold:
    every one must be a NumPy seed."""
    if protocol.kind != "kfold":
        return
    highest = (SEED_MAX - (protocol.folds - 1)) // 1000 - (protocol.repeats - 1)
    if protocol.seed > highest:
        raise UserError(
            f"{where}: protocol.seed: must be in 0..{max(highest, 0)} with protocol.folds={protocol.folds} and "
            f"protocol.repeats={protocol.repeats} (the validation splits are seeded with (seed + repeat) * 1000 + "
            f"fold, which must stay within NumPy's 0..{SEED_MAX}), got {protocol.seed}"
        )


def _check_combinations(cfg: Experiment, where: str) -> None:
    """Rules between keys: via needs a resolution, fixed folds need the split layout, k-fold seeds stay NumPy seeds."""
    if cfg.data.resize.policy == "via" and not cfg.data.resize.via:
        raise UserError(f"{where}: data.resize.via: policy 'via' needs a resolution, e.g. via: 24")
    if cfg.protocol.kind == "fixed" and cfg.data.layout != "split":
        raise UserError(f"{where}: protocol.kind: 'fixed' needs data.layout: split")
    _check_protocol_seed(cfg.protocol, where)


def _check_output_outside_data(cfg: Experiment, where: str) -> None:
    """An output folder inside the data folder would be scanned as data by the next run."""
    if cfg.data.root == "synthetic":
        return
    data, output = Path(cfg.data.root).resolve(), Path(cfg.run.output).expanduser().resolve()
    if output == data or data in output.parents:
        raise UserError(
            f"{where}: run.output: {safe_name(output)} is inside data.root {safe_name(data)}; its files would be read "
            "as images next time. Set run.output to a folder outside the data folder"
        )


def validate_experiment(raw: dict, where: str) -> Experiment:
    """The typed experiment; the first problem (in file order of sections) as one UserError line naming `where`."""
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{where}: {error_text(exc)}") from None


def output_folder(name: str, output: str | None) -> str:
    """Where an experiment's runs go: run.output, else runs/<name> (relative to the working directory)."""
    return output if output is not None else f"runs/{name}"


def _from_output(folder: Path) -> dict:
    raw = read_yaml(folder / RESOLVED)
    run = raw.get("run") if isinstance(raw.get("run"), dict) else {}
    return {**raw, "run": {**run, "output": str(folder)}}


def output_of(target: str | Path) -> tuple[Path, Path | None]:
    """What an output TARGET (`report`, `explain`) means: (the output folder, the experiment file or None when TARGET
    is the folder itself). Of an experiment file only name and run.output are read (a report needs no data)."""
    path = Path(target).expanduser()
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        try:
            ref = OutputRef.model_validate(read_yaml(path))
        except ValidationError as exc:
            raise UserError(f"{path}: {error_text(exc, OutputRef)}") from None
        return Path(output_folder(ref.name, ref.run.output)), path
    if path.is_dir():
        return path, None
    raise UserError(f"{target}: no such experiment file or output folder (expected a .yaml file or runs/<name>)")


RESOLVED = "config.resolved.yaml"  # what `run` writes into an output folder: the experiment as it ran


def resolved_config(folder: Path) -> Path | None:
    """An output folder's config.resolved.yaml, or None when `folder` is not an experiment's output folder."""
    path = Path(folder) / RESOLVED
    return path if Path(folder).is_dir() and path.is_file() else None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    """Read, override, validate; the experiment with data.root resolved and run.output filled in, located at `path`.

    `path` may also be an output folder (runs/<name>): its config.resolved.yaml (the experiment as it ran, with the
    --set overrides of that run) with run.output set to the folder itself."""
    path = Path(path)
    where = str(path)
    if path.is_dir() and resolved_config(path) is None:
        raise UserError(f"{path}: no {RESOLVED} in this folder (expected an output folder written by `run`, or an "
                        "experiment file)")
    raw = read_yaml(path) if resolved_config(path) is None else _from_output(path)
    cfg = validate_experiment(apply_overrides(raw, list(overrides), where), where)
    _check_combinations(cfg, where)
    data = cfg.data.model_copy(update={"root": str(resolve_data_root(cfg.data.root, path.parent.resolve(), where))})
    run = cfg.run.model_copy(update={"output": output_folder(cfg.name, cfg.run.output)})
    cfg = cfg.replace(data=data, run=run)
    _check_output_outside_data(cfg, where)
    return cfg.located(where, path.parent.resolve())


def with_overrides(cfg: Experiment, overrides: dict[str, Any]) -> Experiment:
    """A copy of the config with dotted train.* keys replaced, validated like `--set` (an int for a float key becomes
    that float)."""
    if not overrides:
        return cfg
    raw = cfg.model_dump()
    for key, value in overrides.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return validate_experiment(raw, cfg.source).located(cfg.source, cfg.folder)
