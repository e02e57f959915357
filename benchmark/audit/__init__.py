"""Data audit: does the data let a model cheat? (duplicates, leakage across folds, shortcuts, bad files)."""

from benchmark.audit.core import run_audit
from benchmark.audit.render import render_markdown, render_summary
from benchmark.audit.save import save_audit

__all__ = ["run_audit", "render_markdown", "render_summary", "save_audit"]
