"""pydantic's validation errors as the suite's one-line messages: key path, value, what is allowed, "did you mean".

The first problem is reported the way a reader goes through the file: in each section unknown keys first, then the
keys in their documented order, depth first.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from benchmark.errors import ECHO_LIMIT, brief, did_you_mean, safe_name
from benchmark.experiment import Experiment, Section, bounds, choices, describe, section_of, unwrap

_UNKNOWN = ("extra_forbidden", "invalid_key")
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _located(loc: tuple, root: type[Section]) -> tuple[list[str], FieldInfo | None, type[Section], Any]:
    """Walk `loc` through the models: (key path, the key's field or None, the section it is in, the unknown key)."""
    section: type[Section] | None = root
    parts: list[str] = []
    field, parent = None, root
    for key in loc:
        if section is None:
            break
        if not isinstance(key, str) or key not in section.model_fields:
            return parts, None, section, key
        parent, field = section, section.model_fields[key]
        parts.append(key)
        section = section_of(unwrap(field)[0])
    return parts, field, parent, None


def _rank(error: dict, root: type[Section]) -> list[tuple[int, int]]:
    """Sort key: within a section an unknown key comes before its known keys, which come in declaration order."""
    section: type[Section] | None = root
    rank = []
    for key in error["loc"]:
        if section is None:
            break
        if not isinstance(key, str) or key not in section.model_fields:
            rank.append((0, 0))
            break
        rank.append((1, list(section.model_fields).index(key)))
        section = section_of(unwrap(section.model_fields[key])[0])
    return rank


def _first_required(section: type[Section], parts: list[str]) -> tuple[list[str], FieldInfo]:
    """A missing section stands for its first required key (the key the user has to write)."""
    for key, field in section.model_fields.items():
        if field.is_required():
            inner = section_of(unwrap(field)[0])
            return _first_required(inner, parts + [key]) if inner else (parts + [key], field)
    raise AssertionError(f"{section.__name__} has no required key")


def _message(error: dict, root: type[Section]) -> str:
    kind, value = error["type"], error.get("input")
    parts, field, section, unknown = _located(error["loc"], root)
    path = ".".join(parts)
    if kind in _UNKNOWN or (field is None and unknown is not None):
        key = unknown if unknown is not None else error["loc"][-1]
        allowed = list(section.model_fields)
        dotted = ".".join(parts + [safe_name(key, ECHO_LIMIT)])
        return f"unknown key {dotted}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}"
    if field is None:
        return f"{path or 'top level'}: expected a mapping, got {brief(value)}"
    if kind == "missing":
        inner = section_of(unwrap(field)[0])
        parts, field = _first_required(inner, parts) if inner else (parts, field)
        return f"missing required key {'.'.join(parts)} ({describe(field)})"
    annotation = unwrap(field)[0]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # echoed as the number it became, as the key holds it
    if kind == "check":
        return f"{path}: {error['ctx']['problem']}, got {brief(value)}"
    if kind == "finite_number":
        return f"{path}: must be a finite number, got {value!r}"
    if kind in _BOUNDS:
        return f"{path}: {bounds(field)}, got {brief(value)}"
    allowed = choices(annotation)
    on_item = len(error["loc"]) > len(parts)
    if kind == "literal_error" and allowed and (on_item or isinstance(value, str)):
        return (f"{path}: {brief(value)} is not allowed{did_you_mean(value, list(allowed))}; "
                f"allowed: {', '.join(allowed)}")
    if value is None and not unwrap(field)[1] and not section_of(annotation):
        return f"{path}: must not be null; expected {describe(field)}"
    return f"{path}: expected {describe(field)}, got {brief(value)}"


def error_text(exc: ValidationError, root: type[Section] = Experiment) -> str:
    """The first problem of a failed validation of `root`, as 'KEY.PATH: what is wrong, got VALUE'."""
    errors = sorted(exc.errors(include_url=False), key=lambda error: _rank(error, root))
    return _message(errors[0], root)
