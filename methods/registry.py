"""The method registry `METHODS`: `register_method`, `build`, `list_methods`, `method_info`, parameter checking.

A method's hyper-parameters are the keyword arguments of its class's `__init__`: each must have a type annotation
and a default. Supported annotations: `float`, `int`, `bool`, `str`, `Literal[...]` and unions of these with `None`
(e.g. `float | None`). `build` checks the types generically (ints are accepted for floats, nothing is converted
from strings, floats must be finite); each method checks its own value ranges in `__init__`.
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from methods.base import Method
from methods.errors import UserError, brief
from methods.registry_core import Registry
from methods.space import Choice, Dimension, IntUniform, LogUniform, Uniform, check_dimension, corners

_SCALARS = (float, int, bool, str, type(None))


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its name, its annotation (already resolved) and its default."""

    name: str
    annotation: Any
    default: Any

    @property
    def options(self) -> tuple:
        """The alternatives of the annotation: types, or literal values wrapped in a 1-tuple."""
        return _alternatives(self.annotation)

    @property
    def type_name(self) -> str:
        names = []
        for option in self.options:
            if isinstance(option, tuple):
                names.append(repr(option[0]))
            else:
                names.append("None" if option is type(None) else option.__name__)
        return " | ".join(names)

    def describe(self) -> str:
        return f"{self.name}: {self.type_name} = {self.default!r}"

    def coerce(self, value: Any) -> Any:
        """Return `value` as this parameter's type (int → float), or raise `TypeError` if it is not one."""
        for option in self.options:
            if isinstance(option, tuple):
                if type(value) is type(option[0]) and value == option[0]:
                    return value
            elif option is type(None):
                if value is None:
                    return None
            elif option is bool:
                if isinstance(value, bool):
                    return value
            elif option is int:
                if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                    return int(value)
            elif option is float:
                if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
                    return float(value)
            elif option is str and isinstance(value, str):
                return value
        raise TypeError(f"parameter '{self.name}' must be {self.type_name}, got {type(value).__name__} {brief(value)}")


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its class, its parameters (in signature order), description, citation and the search
    space it declares for tuning (parameter name → dimension)."""

    name: str
    cls: type
    params: tuple[Param, ...]
    description: str
    citation: str
    space: dict[str, Dimension]

    def allowed(self) -> str:
        return ", ".join(p.describe() for p in self.params) or "none"

    @property
    def origin(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


METHODS: Registry[MethodSpec] = Registry(
    "method", builtins=("methods.objectives", "methods.alpha_js", "methods.bilinear", "methods.builtin.*"), describe=lambda s: s.origin
)


def _alternatives(annotation: Any) -> tuple:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return tuple(option for arg in typing.get_args(annotation) for option in _alternatives(arg))
    if origin is Literal:
        return tuple((value,) for value in typing.get_args(annotation))
    if annotation is None:
        return (type(None),)
    if annotation in _SCALARS:
        return (annotation,)
    raise TypeError(f"unsupported parameter annotation {annotation!r}; use float, int, bool, str, Literal or None")


def _params_of(cls: type) -> tuple[Param, ...]:
    hints = typing.get_type_hints(cls.__init__)
    params = []
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        where = f"{cls.__qualname__}.__init__ parameter '{p.name}'"
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise TypeError(f"{where}: *args/**kwargs are not allowed, hyper-parameters are named")
        if p.name not in hints or p.default is p.empty:
            raise TypeError(f"{where} needs a type annotation and a default")
        param = Param(p.name, hints[p.name], p.default)
        param.coerce(p.default)
        params.append(param)
    return tuple(params)


def _space_of(cls: type, params: tuple[Param, ...]) -> dict[str, Dimension]:
    """The class attribute `search_space` checked against the parameters: known names, sane bounds, right types."""
    space = dict(getattr(cls, "search_space", None) or {})
    by_name = {p.name: p for p in params}
    for key, dim in space.items():
        where = f"{cls.__qualname__}.search_space[{key!r}]"
        if key not in by_name:
            raise TypeError(f"{where}: not a parameter of {cls.__qualname__}.__init__")
        if not isinstance(dim, (Uniform, LogUniform, IntUniform, Choice)):
            raise TypeError(f"{where}: {dim!r} is not a dimension; use methods.space.Uniform, LogUniform, IntUniform "
                            "or Choice")
        try:
            check_dimension(dim)
            for value in corners(dim):
                by_name[key].coerce(value)
            if isinstance(dim, IntUniform) and int not in by_name[key].options:
                raise TypeError(f"parameter '{key}' is not an int")
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{where}: {exc}") from None
    return space


def register_method(name: str):
    """Class decorator: register a `Method` subclass under `name`; returns the class unchanged.

    The class docstring's first line is the description, the class attribute `citation` (str) the reference, the
    optional class attribute `search_space` (parameter → `methods.space` dimension) what tuning searches.
    Raises `ValueError` if `name` is taken, `TypeError` if the class breaks these rules.
    """

    def decorator(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register_method({name!r}) must decorate a subclass of methods.Method, got {cls!r}")
        if not isinstance(getattr(cls, "citation", None), str):
            raise TypeError(f"method class {cls.__qualname__} needs a class attribute `citation: str`")
        if not (cls.__doc__ or "").strip():
            raise TypeError(f"method class {cls.__qualname__} needs a docstring (its first line is the description)")
        description = cls.__doc__.strip().splitlines()[0].strip()
        params = _params_of(cls)
        METHODS.register(name, MethodSpec(name, cls, params, description, cls.citation, _space_of(cls, params)))
        return cls

    return decorator


def resolve_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """All parameters of method `name`, defaults filled in, type-checked (ints become floats where a float is due)."""
    spec = METHODS.get(name)
    given = dict(params or {})
    known = {p.name for p in spec.params}
    unknown = [key for key in given if key not in known]
    if unknown:
        raise UserError(f"method '{name}' has no parameter '{unknown[0]}'; allowed: {spec.allowed()}")
    resolved = {}
    for p in spec.params:
        try:
            resolved[p.name] = p.coerce(given[p.name]) if p.name in given else p.default
        except TypeError as exc:
            raise UserError(f"method '{name}': {exc}; allowed: {spec.allowed()}") from None
    return resolved


def build(name: str, /, **params: Any) -> Method:
    """An instance of method `name` with `params`; unknown name, parameter, type or range → `UserError`
    (a ValueError or TypeError raised by the class's `__init__` counts as a bad parameter).

    The instance's `hparams` attribute holds all its parameters, defaults included.
    """
    resolved = resolve_params(name, params)
    try:
        method = METHODS.get(name).cls(**resolved)
    except (ValueError, TypeError) as exc:
        raise UserError(f"method '{name}': {exc}; allowed: {METHODS.get(name).allowed()}") from None
    method.hparams = resolved
    return method


def list_methods(pattern: str = "*") -> list[str]:
    """Sorted names of the registered methods matching the fnmatch `pattern`."""
    return METHODS.names(pattern)


def method_info(name: str) -> dict[str, Any]:
    """`{name, params: {pname: (type_name, default)}, description, citation, space: {pname: dimension}}`."""
    spec = METHODS.get(name)
    return {
        "name": spec.name,
        "params": {p.name: (p.type_name, p.default) for p in spec.params},
        "description": spec.description,
        "citation": spec.citation,
        "space": dict(spec.space),
    }


snapshot = METHODS.snapshot
restore = METHODS.restore
