"""A study's search space: the method's declared dimensions, then the experiment's `tune.space` on top."""

from __future__ import annotations

import copy
from typing import Any

import methods
from benchmark.errors import UserError, brief, did_you_mean
from methods.space import Choice, Dimension, parse_dimension

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


def corners(dim: Dimension) -> list[Any]:
    """Values that exercise a dimension's range: both bounds, or every choice."""
    return list(dim.values) if isinstance(dim, Choice) else [dim.low, dim.high]


def with_overrides(cfg: dict, overrides: dict[str, Any]) -> dict:
    """A copy of the config with dotted train.* keys replaced (ints stay ints for int keys)."""
    if not overrides:
        return cfg
    out = copy.deepcopy(cfg)
    for key, value in overrides.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return out


def check_train_dimensions(cfg: dict, dims: dict[str, Dimension], where: str) -> None:
    """Each train.* dimension names a known key whose bounds the config accepts (validated exactly like `--set`)."""
    from benchmark.config import SCHEMA, apply_overrides, public
    from benchmark.schema import validate

    for key, dim in dims.items():
        if key.startswith(TRAIN_PREFIX):
            for value in corners(dim):
                at = f"{where}: tune.space"
                validate(apply_overrides(public(cfg), [f"{key}={value!r}"], at), SCHEMA, at, "")
