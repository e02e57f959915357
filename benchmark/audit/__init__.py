"""Data audit: does the data let a model cheat? (duplicates, leakage across folds, shortcuts, bad files).

The names below are imported on first use, so that `benchmark.audit.settings` (the CLI's defaults) stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "run_audit": "benchmark.audit.core",
    "render_markdown": "benchmark.audit.render",
    "render_summary": "benchmark.audit.render",
    "save_audit": "benchmark.audit.save",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
