"""A study's search space: the method's declared dimensions, then the experiment's `tune.space` on top."""

from __future__ import annotations

import json
from typing import Any

import methods
from benchmark.errors import UserError, brief, did_you_mean
from benchmark.experiment import Experiment
from methods.space import Dimension, corners, parse_dimension

TRAIN_PREFIX = "train."


def experiment_dimensions(space: dict[str, Any], method_names: list[str], where: str) -> dict[str, Dimension]:
    """`tune.space` parsed and checked: train.* keys for every method, METHOD.PARAM for a method of the experiment."""
    out = {}
    for key, value in space.items():
        at = f"{where}: tune.space.{key}"
        try:
            dim = parse_dimension(value)
        except UserError as exc:
            raise UserError(f"{at}: {exc}") from None
        head, _, param = key.partition(".")
        if key.startswith(TRAIN_PREFIX):
            pass
        elif head in method_names:
            info = methods.method_info(head)
            if param not in info["params"]:
                raise UserError(f"{at}: method {head!r} has no parameter {brief(param)}"
                                f"{did_you_mean(param, list(info['params']))}; parameters: {', '.join(info['params']) or 'none'}")
        else:
            raise UserError(f"{at}: {brief(head)} is neither 'train' nor a method of this experiment"
                            f"{did_you_mean(head, ['train', *method_names])}; methods: {', '.join(method_names)}")
        out[key] = dim
    return out


def study_dimensions(method: str, extra: dict[str, Dimension]) -> dict[str, Dimension]:
    """Dimensions searched for `method`: its declared space (as METHOD.PARAM), overridden or extended by `extra`."""
    dims = {f"{method}.{param}": dim for param, dim in methods.method_info(method)["space"].items()}
    for key, dim in extra.items():
        if key.startswith(TRAIN_PREFIX) or key.startswith(f"{method}."):
            dims[key] = dim
    return dict(sorted(dims.items()))


def split_values(method: str, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sampled values → (method parameters, train.* overrides)."""
    params = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f"{method}.")}
    overrides = {k: v for k, v in values.items() if k.startswith(TRAIN_PREFIX)}
    return params, overrides


def check_train_dimensions(cfg: Experiment, dims: dict[str, Dimension], where: str) -> None:
    """Each train.* dimension names a known key of an enabled section, whose bounds or choices the config accepts
    (validated exactly like `--set`)."""
    from benchmark.config import apply_overrides, validate_experiment

    raw = cfg.model_dump()
    for key, dim in dims.items():
        if not key.startswith(TRAIN_PREFIX):
            continue
        at = f"{where}: tune.space"
        node: Any = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                break  # an unknown key: the validation below names it, with "did you mean"
            node = node[part]
            if node is None:
                section = ".".join(parts[: i + 1])
                raise UserError(f"{at}.{key}: {section} is null (off); enable it in the experiment file "
                                f"(e.g. {section}: {{}}) to tune its keys")
        for value in corners(dim):
            validate_experiment(apply_overrides(raw, [f"{key}={json.dumps(value)}"], at), at)

