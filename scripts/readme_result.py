"""Print the README's real-data result block for one committed report: its performance table, the paired tests
against CE on the headline metric and the audit's trivial-classifier floor, all read from the report's own files.

    python scripts/readme_result.py reports/solder-defects-cpu
    python scripts/readme_result.py reports/archive/solder-defects-cpu/report
tests/test_published.py checks that the README holds these lines, so a regenerated report cannot leave it stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

AUDIT_SETS = {"input": "what the model sees: sharpness, mean colour, contrast of its input",
              "metadata": "file metadata: format, mode, size, colour"}


def performance_rows(report: Path) -> list[str]:
    """The table lines of tables/performance.md (header, rule and one line per row)."""
    return [line for line in (report / "tables" / "performance.md").read_text().splitlines() if line.startswith("|")]


def headline(report: Path) -> str:
    stats = pd.read_csv(report / "stats" / "pairwise.csv")
    return "test_macro_f1" if "test_macro_f1" in set(stats["metric"]) and "test_f1" not in set(stats["metric"]) \
        else "test_f1"


def pairwise_rows(report: Path) -> list[str]:
    stats = pd.read_csv(report / "stats" / "pairwise.csv")
    metric = headline(report)
    baseline = str(stats["baseline"].iloc[0])  # ce, or "ce (tuned)" in a tuned experiment
    rows = stats[(stats["metric"] == metric) & (stats["baseline"] == baseline)]
    lines = [f"| vs {baseline}, {metric.removeprefix('test_')} | Δ mean (pp) | 95% CI (pp) | p Holm (corrected t) | p Holm (Wilcoxon) |",
             "|:--|--:|:--|--:|--:|"]
    for row in rows.itertuples():
        lines.append(f"| {row.method} | {100 * row.mean_diff:+.2f} | [{100 * row.ci_low:+.2f}, {100 * row.ci_high:+.2f}] "
                     f"| {row.p_t_holm:.3f} | {row.p_wilcoxon_holm:.3f} |")
    return lines


def audit_rows(records: Path) -> list[str]:
    audit = json.loads((records / "audit.json").read_text())
    task = audit["shortcuts"]["tasks"][0]
    score = "f1" if task["positive"] else "macro_f1"
    lines = [f"| trivial classifier (random forest) on | accuracy (%) | {score.replace('_', '-')} (%) |", "|:--|--:|--:|"]
    for item in task["sets"]:
        if item["key"] in AUDIT_SETS:
            lines.append(f"| {AUDIT_SETS[item['key']]} | {100 * item['accuracy']:.1f} | {100 * item[score]:.1f} |")
    return lines


def main(report: str) -> None:
    path = Path(report)
    # reports/<name> ↔ reports/records/<name>; reports/archive/<name>/report ↔ reports/archive/<name>/records
    records = path.parent / "records" if path.name == "report" else path.parent / "records" / path.name
    for block in (performance_rows(path), pairwise_rows(path), audit_rows(records)):
        print("\n".join(block) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
