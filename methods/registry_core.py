"""`Registry[T]`: entries of one kind under unique names; the method and the backbone registries are two of them."""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from methods.errors import UserError, brief, unknown_name_hint

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one `kind`: `register` (a taken name → ValueError), `get` (unknown → `UserError` with a
    "did you mean" hint), `find`, `names(pattern)`, and `snapshot` / `restore` to roll back.

    `builtins` are the modules whose import registers the built-in entries (`PACKAGE.*`: each module of PACKAGE). They are imported on the first use of
    the registry (any method, `register` included), so importing the registry is cheap and no built-in is missed.
    `describe` names an entry's origin in the duplicate-name message; `unknown_note` ends the unknown-name message.
    """

    def __init__(self, kind: str, builtins: Sequence[str] = (), describe: Callable[[T], str] = repr,
                 unknown_note: str = ""):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._pending = tuple(builtins)
        self._describe = describe
        self._unknown_note = unknown_note

    def _load_builtins(self) -> None:
        """Import the built-in modules; `PACKAGE.*` stands for every module of that package (one file, one entry)."""
        modules, self._pending = self._pending, ()
        for module in modules:
            if module.endswith(".*"):
                package = importlib.import_module(module[:-2])
                for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name):
                    importlib.import_module(f"{package.__name__}.{info.name}")
            else:
                importlib.import_module(module)

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name` and return it; a name already taken → `ValueError` naming its holder."""
        self._load_builtins()
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered by {self._describe(self._entries[name])}")
        self._entries[name] = entry
        return entry

    def find(self, name: str) -> T | None:
        """The entry registered as `name`, or None."""
        self._load_builtins()
        return self._entries.get(name)

    def get(self, name: str) -> T:
        """The entry registered as `name`; unknown → `UserError` echoing it (cut short) and naming close names or all."""
        entry = self.find(name)
        if entry is None:
            hint = unknown_name_hint(name, self._entries)
            raise UserError(f"unknown {self.kind} {brief(name)}; {hint}{self._unknown_note}")
        return entry

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the fnmatch `pattern` (case-sensitive)."""
        self._load_builtins()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def snapshot(self) -> dict[str, T]:
        """A copy of the entries (built-ins included), to `restore` later, e.g. after a plugin fails half-way."""
        self._load_builtins()
        return dict(self._entries)

    def restore(self, saved: dict[str, T]) -> None:
        """Make the entries those of `saved` (a `snapshot`), no more and no fewer."""
        self._load_builtins()
        self._entries = dict(saved)
