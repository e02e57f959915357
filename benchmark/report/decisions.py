"""The decision side of the report: verdicts with a ROPE, variance components, what a decision costs and the
per-image analysis; their files under stats/ and their HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.atomic import atomic_write_csv, atomic_write_text
from benchmark.pages import html_table, markdown_table
from benchmark.report import perimage, power, stats, variance, verdicts
from benchmark.report.columns import info
from benchmark.report.selection import Rows
from benchmark.report.tables import column_label

DECISION_FILE = "decision.md"


@dataclass
class Decisions:
    """The new tables (raw), the lines `report` prints and the notes the page shows."""

    verdicts: pd.DataFrame
    variance: pd.DataFrame
    power: pd.DataFrame
    perimage: pd.DataFrame
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def design_of(results: pd.DataFrame) -> power.Design:
    """folds x repeats x seeds seen among the finished runs."""
    done = results[results["status"] == "done"]
    return power.Design(*(max(1, int(done[c].nunique())) for c in ("fold", "repeat", "seed")))


def decide(rows: Rows, metrics: list[str], backbones: list[str], results: pd.DataFrame, output_dir: Path,
           classes: int, rope_pp: float = verdicts.DEFAULT_ROPE_PP,
           decide_pp: float = power.DEFAULT_DECIDE_PP) -> Decisions:
    """Everything the decision side computes."""
    found = list(stats.comparisons(rows, metrics, backbones))
    verdict = verdicts.verdicts(found, rope_pp)
    components = variance.table(rows, metrics, backbones, found)
    ratios = {(c.metric, c.backbone, c.method): c.ratio for c in found}
    design, budget = design_of(results), power.budget_of(results)
    costs = power.table(components, ratios, design, budget, decide_pp, rope_pp) if len(components) else pd.DataFrame()
    lines = power.summary(components, ratios, design, budget, decide_pp, rope_pp) if len(components) else []
    images, note = perimage.table(rows, backbones, output_dir, classes)
    return Decisions(verdict, components, costs, images, lines, [note] if note else [])


def decisions_for_output(output_dir: Path, design: power.Design, runs_per_unit: float, run_s: float | None = None,
                         decide_pp: float = power.DEFAULT_DECIDE_PP,
                         rope_pp: float = verdicts.DEFAULT_ROPE_PP) -> list[str]:
    """The cost lines of a planned `design` (`runs_per_unit` runs per fold x repeat x seed, `run_s` seconds each,
    default: the mean measured here) from the variance measured on the results already in `output_dir`; empty when
    there are none to measure (for `run --dry-run`)."""
    from benchmark.report.build import _metric_names
    from benchmark.report.load import _load, backbone_order, class_names, read_config
    from benchmark.report.selection import build_rows

    results, _ = _load(output_dir)
    config, _ = read_config(output_dir)
    _, metrics, select = _metric_names(None, None, class_names(results), config)
    rows, backbones = build_rows(results, select), backbone_order(results, config)
    found = list(stats.comparisons(rows, metrics, backbones))
    components = variance.table(rows, metrics, backbones, found)
    if components.empty:
        return []
    measured = power.budget_of(results)
    budget = power.Budget(runs_per_unit, measured.run_s if run_s is None else run_s, measured.done)
    ratios = {(c.metric, c.backbone, c.method): c.ratio for c in found}
    return power.summary(components, ratios, design, budget, decide_pp, rope_pp, which="planned")


def _pp(value: float, metric: str, sign: bool = True) -> str:
    if pd.isna(value):
        return "—"
    scale, unit = info(metric).scale(), (" pp" if info(metric).percent else "")
    return f"{value * scale:{'+' if sign else ''}.2f}{unit}"


def _p(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:.3f}"


def verdicts_display(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict table for reading."""
    return pd.DataFrame([{
        "metric": column_label(r["metric"]), "backbone": r["backbone"], "method": r["method"],
        "blocks": int(r["blocks"]), "seeds/block": "—" if pd.isna(r["seeds_per_block"]) else f"{r['seeds_per_block']:g}",
        "Δ mean": _pp(r["mean_diff"], r["metric"]),
        "95% interval": "—" if pd.isna(r["cred_low"]) else f"[{_pp(r['cred_low'], r['metric'])}, {_pp(r['cred_high'], r['metric'])}]",
        "ROPE": f"±{_pp(r['rope'], r['metric'], sign=False)}", "P(worse)": _p(r["p_worse"]),
        "P(equivalent)": _p(r["p_equivalent"]), "P(better)": _p(r["p_better"]), "verdict": r["verdict"],
        "note": r["note"],
    } for _, r in table.iterrows()])


def variance_display(table: pd.DataFrame) -> pd.DataFrame:
    """The variance components for reading (SDs in pp for percent metrics)."""
    return pd.DataFrame([{
        "metric": column_label(r["metric"]), "backbone": r["backbone"], "method": r["method"], "of": r["of"],
        "splits": int(r["splits"]), "seeds/split": f"{r['seeds_per_split']:.2g}",
        "SD between splits": _pp(r["sd_split"], r["metric"], sign=False),
        "SD between seeds (within split)": _pp(r["sd_seed"], r["metric"], sign=False)
        if not pd.isna(r["sd_seed"]) else "not measured (1 seed)",
        "seed share of variance": "—" if pd.isna(r["seed_share"]) else f"{r['seed_share']:.0%}",
    } for _, r in table.iterrows()])


def perimage_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([{
        "metric": column_label(r["metric"]), "backbone": r["backbone"], "method": r["method"], "blocks": r["blocks"],
        "runs/method": r["runs_per_method"], "image tests": r["images"], "Δ mean": _pp(r["mean_diff"], r["metric"]),
        "95% bootstrap interval": f"[{_pp(r['ci_low'], r['metric'])}, {_pp(r['ci_high'], r['metric'])}]",
    } for _, r in table.iterrows()])


def verdict_grid_display(table: pd.DataFrame, backbones: list[str]) -> pd.DataFrame:
    """Rows = methods, columns = (metric, backbone incl. pooled), cells = 'verdict (Δ)'."""
    cells = table.assign(cell=[f"{w} ({_pp(d, m)})" for w, d, m in
                               zip(table["verdict"], table["mean_diff"], table["metric"], strict=True)],
                         label=table["metric"].map(column_label))
    columns = [b for b in [*backbones, verdicts.POOLED] if b in set(table["backbone"])]
    wide = cells.pivot_table(index="method", columns=["label", "backbone"], values="cell", aggfunc="first", sort=False)
    order = [(label, b) for label in dict.fromkeys(cells["label"]) for b in columns if (label, b) in wide.columns]
    wide = wide.reindex(index=list(dict.fromkeys(table["method"])), columns=order).fillna("—")
    wide.columns.names = [None, None]
    return wide


def write(d: Decisions, directory: Path, backbones: list[str]) -> None:
    """stats/verdicts, variance, power, perimage (.csv raw, .md for reading) and decision.md."""
    for name, raw, shown in (("verdicts", d.verdicts, verdicts_display), ("variance", d.variance, variance_display),
                             ("perimage", d.perimage, perimage_display)):
        atomic_write_csv(directory / f"{name}.csv", raw)
        atomic_write_text(directory / f"{name}.md", markdown_table(shown(raw), index=False) + "\n" if len(raw) else "")
    if len(d.verdicts):
        grid = verdict_grid_display(d.verdicts, backbones)
        grid.columns = [f"{backbone} {label}" for label, backbone in grid.columns]
        atomic_write_text(directory / "verdict_grid.md", markdown_table(grid) + "\n")
    atomic_write_csv(directory / "power.csv", d.power)
    atomic_write_text(directory / DECISION_FILE, "\n".join(f"{line}\n" for line in d.lines))


def html(d: Decisions, backbones: list[str]) -> dict[str, str]:
    """HTML fragments: the verdict grid, the verdict table, the variance table, the per-image table."""
    out = {"grid": "", "verdicts": "", "variance": "", "perimage": ""}
    if len(d.verdicts):
        out["grid"] = html_table(verdict_grid_display(d.verdicts, backbones).style.hide(axis="index", names=True),
                                 "Verdicts (mean difference to the baseline)")
        out["verdicts"] = html_table(verdicts_display(d.verdicts).style.hide(axis="index"), "Verdicts")
    if len(d.variance):
        out["variance"] = html_table(variance_display(d.variance).style.hide(axis="index"),
                                     f"Variance components ({variance.ESTIMATOR})")
    if len(d.perimage):
        out["perimage"] = html_table(perimage_display(d.perimage).style.hide(axis="index"),
                                     f"Per-image paired bootstrap ({perimage.REPLICATES} replicates)")
    return out

