"""The figures people read first: a forest plot per backbone (difference to the baseline, its 95% interval, the
ROPE shaded) and a method x backbone verdict grid; PNG, SVG and PDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from benchmark.report.columns import info
from benchmark.report.figures import Figure, _figure, _save
from benchmark.report.verdicts import POOLED, WORDS

COLORS = {"better": "#4daf4a", "equivalent": "#80b1d3", "worse": "#e41a1c", "undecided": "#d9d9d9"}


def _shown(verdicts: pd.DataFrame) -> list[str]:
    """Metrics with a better direction, in the table's order."""
    return [m for m in dict.fromkeys(verdicts["metric"]) if info(m).higher_is_better is not None]


def forest(verdicts: pd.DataFrame, backbones: list[str], out: Path) -> list[Figure]:
    """One figure per backbone (and the pooled one): a panel per metric, a line per method."""
    verdicts = verdicts[verdicts["mean_diff"].notna()] if len(verdicts) else verdicts
    if verdicts.empty:
        return []
    metrics = _shown(verdicts)
    figures = []
    for backbone in [*backbones, POOLED]:
        sub = verdicts[verdicts["backbone"] == backbone]
        if sub.empty or not metrics:
            continue
        methods = list(dict.fromkeys(sub["method"]))
        fig, axes = _figure(1, len(metrics), 3.0 + 4.5 * len(metrics), 1.4 + 0.45 * len(methods), sharey=True)
        for ax, metric in zip(axes.flat, metrics, strict=True):
            rows = sub[sub["metric"] == metric].set_index("method").reindex(methods)
            scale = info(metric).scale()
            rope = float(rows["rope"].dropna().iloc[0]) * scale if rows["rope"].notna().any() else 0.0
            if rope > 0:
                ax.axvspan(-rope, rope, color="#bbbbbb", alpha=0.35, lw=0, label=f"ROPE ±{rope:g}")
            ax.axvline(0, color="black", lw=0.8)
            y = np.arange(len(methods))[::-1]
            mean, low, high = (rows[c].to_numpy(dtype=float) * scale for c in ("mean_diff", "cred_low", "cred_high"))
            words = list(rows["verdict"].fillna("undecided"))
            for k, word in enumerate(words):
                ax.errorbar(mean[k], y[k], xerr=[[mean[k] - low[k]], [high[k] - mean[k]]] if np.isfinite(low[k]) else None,
                            fmt="o", color=COLORS[word], ecolor="#333333", capsize=3, ms=7, mec="#333333")
                end = high[k] if np.isfinite(high[k]) else mean[k]
                ax.annotate(word, (end, y[k]), xytext=(5, 0), textcoords="offset points", va="center", fontsize=8.5)
            ax.margins(x=0.3)
            ax.set_yticks(y, methods)
            unit = " (pp)" if info(metric).percent else ""
            ax.set(xlabel=f"Difference to {rows['baseline'].dropna().iloc[0] if rows['baseline'].notna().any() else 'baseline'}"
                   f": test {info(metric).label}{unit}", title=info(metric).axis_label())
        fig.suptitle(f"Against the baseline — {backbone}")
        fig.tight_layout()
        name = "forest_pooled" if backbone == POOLED else f"forest_{backbone}"
        _save(fig, out, name, pdf=True)
        figures.append(Figure(
            name, f"Forest plot ({backbone})",
            "Mean difference to the baseline over (fold, repeat) blocks (seeds averaged) with the 95% interval of the "
            "correlated t posterior (= the Nadeau–Bengio interval); grey band: the region of practical equivalence; "
            "colour and word: the verdict at 95%.",
        ))
    return figures


def grid(verdicts: pd.DataFrame, backbones: list[str], out: Path) -> list[Figure]:
    """Method x backbone verdicts, one panel per metric: colour = verdict, text = mean difference."""
    verdicts = verdicts[verdicts["mean_diff"].notna()] if len(verdicts) else verdicts
    metrics = _shown(verdicts) if not verdicts.empty else []
    if not metrics:
        return []
    columns = [b for b in [*backbones, POOLED] if b in set(verdicts["backbone"])]
    methods = list(dict.fromkeys(verdicts["method"]))
    fig, axes = _figure(1, len(metrics), 3.0 + (0.6 + 1.3 * len(columns)) * len(metrics), 1.3 + 0.5 * len(methods),
                        sharey=True)
    cmap = ListedColormap([COLORS[w] for w in WORDS])
    for ax, metric in zip(axes.flat, metrics, strict=True):
        sub = verdicts[verdicts["metric"] == metric]
        codes = sub.pivot(index="method", columns="backbone", values="verdict").reindex(index=methods, columns=columns)
        means = sub.pivot(index="method", columns="backbone", values="mean_diff").reindex(index=methods, columns=columns)
        scale, unit = info(metric).scale(), (" pp" if info(metric).percent else "")
        text = means.map(lambda v, scale=scale, unit=unit: "" if pd.isna(v) else f"{v * scale:+.1f}{unit}")
        numbers = codes.map(lambda w: np.nan if pd.isna(w) else float(WORDS.index(w)))
        sns.heatmap(numbers, annot=text, fmt="", cmap=cmap, vmin=-0.5, vmax=len(WORDS) - 0.5, cbar=False,
                    linewidths=1, linecolor="white", ax=ax, annot_kws={"fontsize": 9})
        ax.set_xticks(np.arange(len(columns)) + 0.5, [c.replace(" (pooled)", "\n(pooled)") for c in columns], rotation=0)
        ax.set(xlabel="", ylabel="", title=info(metric).axis_label())
        if ax is not axes.flat[0]:
            ax.tick_params(axis="y", left=False, labelleft=False)
    fig.legend([Patch(color=COLORS[w]) for w in WORDS], list(WORDS), loc="center left", bbox_to_anchor=(1.0, 0.5),
               frameon=False, title="Verdict (95%)")
    fig.tight_layout()
    _save(fig, out, "verdicts", pdf=True)
    return [Figure(
        "verdicts", "Verdicts: method × backbone",
        "Colour: better / equivalent / worse / undecided at 95% posterior probability (correlated Bayesian t-test "
        "with the ROPE); text: mean difference to the baseline. Undecided means the data cannot tell, not “no difference”.",
    )]
