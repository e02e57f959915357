"""Plugins: user modules or `.py` files whose `@register_method` / `@register_backbone` decorators add entries."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from methods import backbones, registry
from methods.errors import UserError

_LOADED_FILES: dict[Path, str] = {}


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def _import_file(path: Path) -> None:
    module_name = f"methods_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    _LOADED_FILES[path] = module_name


def load_plugins(specs: list[str], base_dir: Path | None = None) -> None:
    """Import each plugin: a module name (`my_pkg.losses`) or a `.py` path, relative to `base_dir` (default: cwd).

    A file already loaded is not imported again (module names are cached by Python). A plugin that fails to import
    → `UserError` naming it; whatever it registered before failing is removed again.
    """
    for spec in specs:
        saved = registry.snapshot(), backbones.snapshot()
        try:
            if _is_path(spec):
                path = (Path(base_dir or ".") / spec).resolve()
                if not path.is_file():
                    raise UserError(f"plugin {spec}: file {path} does not exist")
                if path not in _LOADED_FILES:
                    _import_file(path)
            else:
                importlib.import_module(spec)
        except UserError:
            registry.restore(saved[0])
            backbones.restore(saved[1])
            raise
        except Exception as exc:
            registry.restore(saved[0])
            backbones.restore(saved[1])
            lines = str(exc).strip().splitlines()
            message = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
            raise UserError(f"plugin {spec} failed to load: {message}") from None
