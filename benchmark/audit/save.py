"""Write audit.json and audit.md atomically (benchmark/atomic.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from benchmark.atomic import atomic_write_text
from benchmark.audit.render import render_markdown


def plain(value: object) -> object:
    """NumPy scalars/arrays to Python, NaN/inf to None: strict JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def save_audit(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `<out_dir>/audit.json` and `<out_dir>/audit.md`; return their paths."""
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "audit.json", out_dir / "audit.md"
    text = json.dumps(plain(result), indent=1, allow_nan=False)
    markdown = render_markdown(result)
    atomic_write_text(json_path, text + "\n")
    atomic_write_text(md_path, markdown)
    return json_path, md_path
