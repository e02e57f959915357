"""A small strict schema: every key known, typed and range-checked, with did-you-mean for typos."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmark.errors import ECHO_LIMIT, UserError, brief, did_you_mean, safe_name

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}


@dataclass(frozen=True)
class Field:
    """One leaf key: allowed types, default, and optional choices or a check returning an error text."""

    types: tuple[type, ...]
    default: Any = None
    required: bool = False
    nullable: bool = False
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    doc: str = ""

    def describe(self) -> str:
        if self.choices:
            allowed = ("a list of " if list in self.types else "") + " | ".join(map(str, self.choices))
        else:
            allowed = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in self.types)
        return allowed + (" or null" if self.nullable else "")


@dataclass(frozen=True)
class Section:
    """A mapping of known keys; `nullable` sections may be null (disabled)."""

    fields: dict[str, Field | Section]
    nullable: bool = False
    default_null: bool = False


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def validate(value: Any, spec: Field | Section, where: str, path: str) -> Any:
    """Return the value with defaults filled in; raise UserError naming `where` and the key path."""
    if isinstance(spec, Section):
        if value is None and spec.nullable:
            return None
        if not isinstance(value, dict):
            raise UserError(f"{where}: {path or 'top level'}: expected a mapping, got {brief(value)}")
        out = {}
        for key in value:
            if key not in spec.fields:
                allowed = ", ".join(spec.fields)
                raise UserError(
                    f"{where}: unknown key {_join(path, safe_name(key, ECHO_LIMIT))}{did_you_mean(key, list(spec.fields))}; "
                    f"allowed: {allowed}"
                )
        for key, sub in spec.fields.items():
            sub_path = _join(path, key)
            if key in value:
                out[key] = validate(value[key], sub, where, sub_path)
            elif isinstance(sub, Section):
                out[key] = None if sub.default_null else validate({}, sub, where, sub_path)
            elif sub.required:
                raise UserError(f"{where}: missing required key {sub_path} ({sub.describe()})")
            else:
                out[key] = sub.default
        return out
    if value is None:
        if spec.nullable:
            return None
        raise UserError(f"{where}: {path}: must not be null; expected {spec.describe()}")
    if not _is_type(value, spec.types):
        raise UserError(f"{where}: {path}: expected {spec.describe()}, got {brief(value)}")
    if float in spec.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}: {path}: must be a finite number, got {value!r}")
    if spec.choices is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in spec.choices:
                allowed = ", ".join(map(str, spec.choices))
                raise UserError(f"{where}: {path}: {brief(item)} is not allowed"
                                f"{did_you_mean(item, list(map(str, spec.choices)))}; allowed: {allowed}")
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            raise UserError(f"{where}: {path}: {problem}, got {brief(value)}")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be ≥ {low}"


def open_interval(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low < v < high else f"must be in ({low}, {high})"


def positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def int_range(low: int, high: int) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be in {low}..{high}"
