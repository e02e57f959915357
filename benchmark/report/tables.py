"""Paper-style tables (rows = report rows, columns = backbone x metric, cells = mean ± std) and their files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.atomic import atomic_write_text
from benchmark.pages import html_table, markdown_table
from benchmark.report.columns import info
from benchmark.report.selection import Rows

PLUS_MINUS = {"md": "±", "csv": "±", "html": "±", "tex": r"$\pm$"}
DASH = {"md": "—", "csv": "—", "html": "—", "tex": "--"}
BOLD = {"md": "**{}**", "csv": "{}", "html": "{}", "tex": "{}"}


def summarize(rows: Rows, backbones: list[str], metrics: list[str], n_expected: int) -> pd.DataFrame:
    """Long table: row, kind, backbone, metric, mean, std (ddof=1), n (done), n_failed, n_expected."""
    frame = rows.frame
    done = frame[frame["status"] == "done"]
    long = done.melt(id_vars=["row", "backbone"], value_vars=metrics, var_name="metric").dropna(subset=["value"])
    stats = long.groupby(["row", "backbone", "metric"])["value"].agg(mean="mean", std="std", n="count")
    failed = frame[frame["status"] != "done"].groupby(["row", "backbone"]).size().rename("n_failed")
    index = pd.MultiIndex.from_product([rows.order, backbones, metrics], names=["row", "backbone", "metric"])
    out = stats.reindex(index).reset_index().join(failed, on=["row", "backbone"])
    out["n"] = out["n"].fillna(0).astype(int)
    out["n_failed"] = out["n_failed"].fillna(0).astype(int)
    out["n_expected"] = n_expected
    out["kind"] = out["row"].map(dict(zip(frame["row"], frame["kind"], strict=True)))
    return out[["row", "kind", "backbone", "metric", "mean", "std", "n", "n_failed", "n_expected"]]


def _decimals(metric: str) -> int:
    return 2 if info(metric).percent else 3


def _cell(item: pd.Series, style: str) -> str:
    metric = item["metric"]
    scale, digits = info(metric).scale(), _decimals(metric)
    if item["n"] == 0:
        text = "failed" if item["n_failed"] else DASH[style]
    elif np.isnan(item["std"]):
        text = f"{item['mean'] * scale:.{digits}f}"
    else:
        text = f"{item['mean'] * scale:.{digits}f} {PLUS_MINUS[style]} {item['std'] * scale:.{digits}f}"
    notes = [f"{item['n']}/{item['n_expected']}"] if item["n"] < item["n_expected"] else []
    notes += [f"{item['n_failed']} failed"] if item["n_failed"] else []
    return text + (f" ({', '.join(notes)})" if notes else "")


def best_mask(summary: pd.DataFrame) -> pd.Series:
    """True where a cell's displayed mean is the best of its (backbone, metric) column; oracle rows never win."""
    shown = pd.Series(
        [round(v * info(m).scale(), _decimals(m)) for v, m in zip(summary["mean"], summary["metric"], strict=True)],
        index=summary.index,
    )
    mask = pd.Series(False, index=summary.index)
    eligible = (summary["kind"] != "oracle") & (summary["n"] > 0)
    for (_, metric), group in shown[eligible].groupby([summary["backbone"], summary["metric"]]):
        direction = info(metric).higher_is_better
        if direction is not None:
            best = group.max() if direction else group.min()
            mask[group.index[group == best]] = True
    return mask


def column_label(metric: str) -> str:
    spec = info(metric)
    unit = "%" if spec.percent else spec.unit
    return spec.label[0].upper() + spec.label[1:] + (f" ({unit})" if unit else "")


def wide(summary: pd.DataFrame, style: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cell texts and bold flags, rows in report order, columns (backbone, metric label)."""
    texts = summary.apply(_cell, axis=1, style=style)
    bold = best_mask(summary)
    texts = [BOLD[style].format(t) if b else t for t, b in zip(texts, bold, strict=True)]
    long = summary.assign(text=texts, bold=bold.to_numpy(), column=summary["metric"].map(column_label))
    rows = list(dict.fromkeys(summary["row"]))
    columns = list(dict.fromkeys(zip(long["backbone"], long["column"], strict=True)))
    shape = {"index": "row", "columns": ["backbone", "column"], "sort": False}
    text = long.pivot_table(values="text", aggfunc="first", **shape).reindex(index=rows, columns=columns)
    flags = long.pivot_table(values="bold", aggfunc="first", **shape).reindex(index=rows, columns=columns)
    for frame in (text, flags):
        frame.index.name = "method"
        frame.columns.names = [None, None]
    return text, flags.astype(bool)


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.columns = [f"{backbone} {label}" for backbone, label in frame.columns]
    return out


def to_latex(summary: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table, best per column in bold, names escaped."""
    text, bold = wide(summary, "tex")
    styler = text.style.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    styler = styler.apply(lambda _: np.where(bold, "textbf: --rwrap;", ""), axis=None)
    return styler.to_latex(
        hrules=True, multicol_align="c", caption=caption, label=label, column_format="l" + "r" * text.shape[1]
    )


def to_html(summary: pd.DataFrame, caption: str) -> str:
    """An HTML table (escaped), best per column in bold."""
    text, bold = wide(summary, "html")
    styler = text.style.apply(lambda _: np.where(bold, "font-weight: bold", ""), axis=None)
    return html_table(styler.hide(axis="index", names=True).set_table_attributes('class="paper"'), caption)


def write_table(summary: pd.DataFrame, stem: Path, caption: str) -> None:
    """`stem`.md, .tex and .csv (flat column names)."""
    md, _ = wide(summary, "md")
    csv, _ = wide(summary, "csv")
    atomic_write_text(stem.with_suffix(".md"), f"{caption}\n\n{markdown_table(_flat(md))}\n")
    tex_caption = caption.replace("±", r"$\pm$").replace("×", r"$\times$").replace("%", r"\%")
    atomic_write_text(stem.with_suffix(".tex"), to_latex(summary, tex_caption, f"tab:{stem.name}"))
    atomic_write_text(stem.with_suffix(".csv"), _flat(csv).to_csv())


UNDEFINED = "undefined (zero variance)"


def _p(value: float) -> str:
    return "—" if pd.isna(value) else (f"{value:.3g}" if value >= 1e-4 else "<1e-4")


def _t_text(value: float, undefined: bool, text: str) -> str:
    """A t-test number as text, or why it has none (zero variance of the differences)."""
    return UNDEFINED if undefined else ("—" if pd.isna(value) else text)


def pairwise_display(table: pd.DataFrame) -> pd.DataFrame:
    """The pairwise statistics formatted for reading (differences in percentage points for % metrics)."""
    if table.empty:
        return table
    out = []
    for _, r in table.iterrows():
        spec = info(r["metric"])
        scale, digits = spec.scale(), _decimals(r["metric"])
        unit = " pp" if spec.percent else ""
        fmt = f"{{:+.{digits}f}}"
        undefined = bool(r.get("zero_variance", False))
        ci = _t_text(r["ci_low"], undefined, f"[{fmt.format(r['ci_low'] * scale)}, {fmt.format(r['ci_high'] * scale)}]")
        out.append({
            "metric": column_label(r["metric"]), "backbone": r["backbone"], "method": r["method"],
            "baseline": r["baseline"], "pairs": int(r["n_pairs"]),
            "method mean": "—" if pd.isna(r["mean"]) else f"{r['mean'] * scale:.{digits}f}",
            "baseline mean": "—" if pd.isna(r["mean_baseline"]) else f"{r['mean_baseline'] * scale:.{digits}f}",
            "Δ mean": "—" if pd.isna(r["mean_diff"]) else fmt.format(r["mean_diff"] * scale) + unit,
            "95% CI": ci, "t (NB)": _t_text(r["t"], undefined, f"{r['t']:.2f}"),
            "p (NB t)": _t_text(r["p_t"], undefined, _p(r["p_t"])),
            "p Holm (NB t)": _t_text(r["p_t_holm"], undefined, _p(r["p_t_holm"])),
            "p (Wilcoxon)": _p(r["p_wilcoxon"]), "p Holm (Wilcoxon)": _p(r["p_wilcoxon_holm"]),
            "note": r.get("note", "") or "",
        })
    return pd.DataFrame(out)
