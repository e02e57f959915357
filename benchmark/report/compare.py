"""Several experiments' performance tables side by side (`report A B ...`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

KEY = "method"


def side_by_side(report_dirs: list[Path]) -> str:
    """One Markdown table: a row per method label, each report's performance columns headed by its folder name."""
    merged: pd.DataFrame | None = None
    for folder in report_dirs:
        table = pd.read_csv(Path(folder) / "tables" / "performance.csv", dtype=str)
        table = table.rename(columns={c: f"{Path(folder).name}: {c}" for c in table.columns if c != KEY})
        merged = table if merged is None else merged.merge(table, on=KEY, how="outer", sort=False)
    assert merged is not None
    shown = merged.fillna("-")
    return ("Side by side (mean ± std over each experiment's folds; '-': not in that experiment):\n\n"
            + shown.to_markdown(index=False))
