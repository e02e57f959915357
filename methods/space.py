"""Search-space dimensions a method declares for tuning (`search_space = {"alpha": Uniform(0.05, 0.95)}`).

Plain data, no tuning library: `benchmark.tune` turns them into Optuna distributions. The same four kinds are
written in an experiment's `tune.space` as `{uniform: [low, high]}`, `{log_uniform: [low, high]}`,
`{int: [low, high]}` or `{choice: [values]}` (`parse_dimension`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from methods.errors import UserError, brief


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float

    def describe(self) -> str:
        return f"uniform({self.low:g}, {self.high:g})"

    def as_yaml(self) -> dict:
        return {"uniform": [self.low, self.high]}


@dataclass(frozen=True)
class LogUniform:
    """A float drawn log-uniformly from [low, high] (low > 0)."""

    low: float
    high: float

    def describe(self) -> str:
        return f"log-uniform({self.low:g}, {self.high:g})"

    def as_yaml(self) -> dict:
        return {"log_uniform": [self.low, self.high]}


@dataclass(frozen=True)
class IntUniform:
    """An integer drawn uniformly from low..high (both included)."""

    low: int
    high: int

    def describe(self) -> str:
        return f"int({self.low}, {self.high})"

    def as_yaml(self) -> dict:
        return {"int": [self.low, self.high]}


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of values."""

    values: tuple

    def describe(self) -> str:
        return "choice(" + ", ".join(map(repr, self.values)) + ")"

    def as_yaml(self) -> dict:
        return {"choice": list(self.values)}


Dimension = Uniform | LogUniform | IntUniform | Choice
KINDS = {"uniform": Uniform, "log_uniform": LogUniform, "int": IntUniform, "choice": Choice}


def corners(dim: Dimension) -> list[Any]:
    """Values that exercise a dimension's range: both bounds, or every choice."""
    return list(dim.values) if isinstance(dim, Choice) else [dim.low, dim.high]


def check_dimension(dim: Dimension) -> None:
    """Bounds that make sense (finite, low < high, log needs low > 0, int needs integers); else ValueError."""
    if isinstance(dim, Choice):
        if not dim.values:
            raise ValueError("choice needs at least one value")
        repeated = [v for i, v in enumerate(dim.values) if v in dim.values[:i]]
        if repeated:
            raise ValueError(f"choice lists {brief(repeated[0])} twice; list each value once (a repeat only weights "
                             "the draw)")
        return
    kind = next(name for name, cls in KINDS.items() if isinstance(dim, cls))
    bounds = (dim.low, dim.high)
    shown = f"{kind}: [{brief(dim.low)}, {brief(dim.high)}]"
    if not all(_number(b) and math.isfinite(b) for b in bounds):
        raise ValueError(f"{shown}: bounds must be finite numbers")
    if not dim.low < dim.high:
        raise ValueError(f"{shown}: needs low < high")
    if isinstance(dim, LogUniform) and dim.low <= 0:
        raise ValueError(f"{shown}: needs low > 0")
    if isinstance(dim, IntUniform) and not all(isinstance(b, int) for b in bounds):
        raise ValueError(f"{shown}: needs integer bounds")


def parse_dimension(value: Any) -> Dimension:
    """`{uniform: [0.1, 0.9]}` and friends → a Dimension; anything else → UserError naming what is allowed."""
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in KINDS:
        raise UserError("expected one of {uniform: [low, high]}, {log_uniform: [low, high]}, {int: [low, high]}, "
                        "{choice: [values]}")
    kind, args = next(iter(value.items()))
    if kind == "choice":
        dim = Choice(tuple(args) if isinstance(args, list) else ())
    elif isinstance(args, list) and len(args) == 2:
        low, high = args
        dim = KINDS[kind](float(low), float(high)) if kind != "int" and _number(low) and _number(high) else KINDS[kind](low, high)
    else:
        raise UserError(f"{kind} needs [low, high]")
    try:
        check_dimension(dim)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return dim


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
