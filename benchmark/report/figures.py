"""Report figures (seaborn/matplotlib), each saved as PNG and SVG."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import scikit_posthocs as sp
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator
from scipy import stats
from sklearn.metrics import ConfusionMatrixDisplay

from benchmark.metrics import ECE_BINS, expected_calibration_error
from benchmark.report.columns import info
from benchmark.report.selection import Rows
from benchmark.report.stats import Friedman
from benchmark.store import Store

PARAM_SYMBOLS = {"alpha": "α", "beta": "β", "epsilon": "ε", "gamma": "γ"}
CI_NOTE = "error bars: 95% t-interval over folds × repeats × seeds"


@dataclass
class Figure:
    """A saved figure: files `name`.png/.svg, a title and a one-line caption."""

    name: str
    title: str
    caption: str


def _figure(nrows: int, ncols: int, width: float, height: float, **kwargs) -> tuple[MplFigure, np.ndarray]:
    """A figure with an Agg canvas (no pyplot, no global state) and a 2-D array of axes."""
    fig = MplFigure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _save(fig: MplFigure, directory: Path, name: str, pdf: bool = False) -> None:
    """`name`.png and .svg (and .pdf, for figures meant for a paper)."""
    directory.mkdir(parents=True, exist_ok=True)
    bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
    fig.savefig(directory / f"{name}.png", dpi=100, bbox_inches=bbox)
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text: smaller, faster, selectable
        fig.savefig(directory / f"{name}.svg", bbox_inches=bbox)
    if pdf:
        with matplotlib.rc_context({"pdf.fonttype": 42}):  # embedded TrueType: text stays editable
            fig.savefig(directory / f"{name}.pdf", bbox_inches=bbox)


def t_interval(values: pd.Series) -> tuple[float, float]:
    """95% t confidence interval of the mean (NaN for fewer than two values)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return np.nan, np.nan
    low, high = stats.t.interval(0.95, df=len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return float(np.nan_to_num(low, nan=values.mean())), float(np.nan_to_num(high, nan=values.mean()))


def palette(labels: list[str]) -> dict[str, tuple]:
    """One stable colour per report row."""
    return dict(zip(labels, sns.color_palette("colorblind", max(len(labels), 1)), strict=False))


def _scaled(frame: pd.DataFrame, metrics: list[str], id_vars: list[str]) -> pd.DataFrame:
    long = frame.melt(id_vars=id_vars, value_vars=metrics, var_name="metric")
    long = long.assign(value=pd.to_numeric(long["value"], errors="coerce")).dropna(subset=["value"])
    return long.assign(value=long["value"] * long["metric"].map(lambda m: info(m).scale()).astype(float))


def _legend_right(fig: MplFigure, axes: np.ndarray, title: str | None = None) -> None:
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if handles:
        fig.legend(handles, labels, title=title, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def performance(rows: Rows, metrics: list[str], backbones: list[str], colors: dict, out: Path) -> list[Figure]:
    """Mean test metric per method and backbone with 95% CIs (fair rows)."""
    fair = rows.fair_frame()
    data = _scaled(fair[fair["status"] == "done"], metrics, ["row", "backbone"])
    if data.empty:
        return []
    order = [r for r in rows.fair.values() if r in set(data["row"])]
    fig, axes = _figure(1, len(metrics), 3.2 + 1.3 * len(backbones) * len(metrics), 4.2)
    for ax, metric in zip(axes.flat, metrics, strict=True):
        sub = data[data["metric"] == metric]
        sns.pointplot(
            data=sub, x="backbone", y="value", hue="row", order=backbones, hue_order=order, palette=colors,
            errorbar=t_interval, dodge=0.45 if len(order) > 1 else False, linestyle="none", capsize=0.08, marker="o",
            ax=ax,
        )
        ax.set(xlabel="Backbone", ylabel=info(metric).axis_label(), title=info(metric).axis_label())
    _legend_right(fig, axes, "Method")
    fig.tight_layout()
    _save(fig, out, "performance")
    return [Figure("performance", "Test performance per method and backbone", f"Mean of the fair rows; {CI_NOTE}.")]


def _varying_param(rows: pd.DataFrame) -> str | None:
    params = [c for c in rows if c.startswith("param_") and rows[c].nunique(dropna=True) > 1]
    return params[0] if len(params) == 1 else None


def sweeps(rows: Rows, metrics: list[str], backbones: list[str], colors: dict, out: Path) -> list[Figure]:
    """Test metrics against the one varying parameter of each grid method, the baseline as a reference line."""
    figures = []
    frame = rows.frame
    done = frame[frame["status"] == "done"]
    for method, fair_row in rows.fair.items():
        settings = done[(done["method"] == method) & (done["kind"] == "setting")]
        param = _varying_param(settings) if settings["method_label"].nunique() > 1 else None
        if param is None:
            continue
        name = param.removeprefix("param_")
        symbol = PARAM_SYMBOLS.get(name, name)
        data = _scaled(settings, metrics, ["backbone", param])
        references = {label: _scaled(done[done["row"] == label], metrics, ["backbone"]) for label in (rows.baseline, fair_row) if label}
        fig, axes = _figure(len(metrics), len(backbones), 1.0 + 3.6 * len(backbones), 3.0 * len(metrics), sharex=True)
        for i, metric in enumerate(metrics):
            for j, backbone in enumerate(backbones):
                ax = axes[i, j]
                sub = data[(data["metric"] == metric) & (data["backbone"] == backbone)]
                if not sub.empty:
                    sns.lineplot(
                        data=sub, x=param, y="value", errorbar=t_interval, marker="o", err_style="bars",
                        color=colors.get(fair_row), label=f"{method} per {symbol} (mean, 95% CI)", ax=ax,
                    )
                for label, style in zip(references, ("--", ":")[: len(references)], strict=True):
                    ref = references[label]
                    ref = ref[(ref["metric"] == metric) & (ref["backbone"] == backbone)]["value"]
                    if len(ref):
                        ax.axhline(ref.mean(), linestyle=style, color=colors.get(label, "k"), label=f"{label} (mean)")
                ax.set(xlabel=f"{symbol} ({name})", ylabel=info(metric).axis_label(), title=backbone)
                ax.set_xticks(sorted(settings[param].dropna().unique()))
        _legend_right(fig, axes)
        fig.tight_layout()
        _save(fig, out, f"sweep_{method}")
        figures.append(Figure(
            f"sweep_{method}", f"{method}: test metrics against {symbol}",
            f"Per-setting mean with 95% t-interval over folds; dashed: {rows.baseline} mean; dotted: {fair_row} mean.",
        ))
    return figures


def cd_diagram(result: Friedman, colors: dict, out: Path) -> Figure:
    """Critical-difference diagram of mean ranks (1 = best) with Nemenyi non-significance bars."""
    fig, axes = _figure(1, 1, 8.5, 1.2 + 0.32 * len(result.ranks))
    ax = axes[0, 0]
    sp.critical_difference_diagram(
        result.ranks, result.nemenyi, ax=ax, alpha=0.05, color_palette={k: colors[k] for k in result.ranks.index},
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}",
    )
    label = info(result.metric).axis_label()
    ax.set_title(f"{label}: mean rank (1 = best) over {result.n_blocks} blocks, Friedman p = {result.p:.3g}", pad=12)
    _save(fig, out, f"cd_{result.metric}")
    return Figure(
        f"cd_{result.metric}", f"Critical-difference diagram: test {info(result.metric).label}",
        "Mean rank (1 = best) over backbone × fold × repeat blocks (a split's seeds averaged); bars join methods "
        "the Nemenyi test does not separate at α = 0.05.",
    )


def _predictions(output_dir: Path, run_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    probs, labels = [], []
    for run_id in run_ids:
        frame = Store(output_dir).run(str(run_id)).read_predictions()
        if frame is not None:
            probs.append(frame.filter(like="prob_").to_numpy(dtype=np.float64))
            labels.append(frame["label"].to_numpy(dtype=int))
    if not probs:
        return np.empty((0, 0)), np.empty(0, dtype=int)
    return np.concatenate(probs), np.concatenate(labels)


def reliability(rows: Rows, output_dir: Path, backbones: list[str], colors: dict, out: Path) -> list[Figure]:
    """Reliability diagrams (15 equal-width confidence bins) from the pooled test predictions of each fair row."""
    fair = rows.fair_frame()
    done = fair[fair["status"] == "done"]
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    figures = []
    for backbone in backbones:
        panels = []
        for row in rows.fair.values():
            probs, labels = _predictions(output_dir, list(done[(done["row"] == row) & (done["backbone"] == backbone)]["run_id"]))
            if len(labels):
                panels.append((row, probs, labels))
        if not panels:
            continue
        ncols = min(4, len(panels))
        nrows = -(-len(panels) // ncols)
        fig, axes = _figure(nrows, ncols, 3.4 * ncols, 3.5 * nrows)
        for ax, (row, probs, labels) in zip(axes.flat, panels, strict=False):
            confidence = probs.max(axis=1)
            correct = (probs.argmax(axis=1) == labels).astype(np.float64)
            bins = pd.cut(confidence, edges, include_lowest=True)
            accuracy = pd.Series(correct).groupby(bins, observed=False).mean().to_numpy()
            ax.bar(edges[:-1], np.nan_to_num(accuracy), width=1 / ECE_BINS, align="edge", color=colors.get(row),
                   edgecolor="black", linewidth=0.5, label="accuracy per bin")
            ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
            ece = expected_calibration_error(probs, labels)
            ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Confidence (top-label probability)", ylabel="Accuracy (fraction)")
            ax.set_title(f"{row}\nECE = {100 * ece:.2f}% (n = {len(labels)})", fontsize=10)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.suptitle(f"Reliability diagrams — {backbone}")
        fig.tight_layout()
        _save(fig, out, f"reliability_{backbone}")
        figures.append(Figure(
            f"reliability_{backbone}", f"Reliability diagrams ({backbone})",
            f"Test predictions pooled over folds, {ECE_BINS} equal-width bins; ECE of the pooled predictions.",
        ))
    return figures


def confusion(rows: Rows, backbones: list[str], classes: list[str], out: Path) -> list[Figure]:
    """Confusion matrices of the fair rows, summed over folds."""
    fair = rows.fair_frame()
    done = fair[(fair["status"] == "done") & fair.get("test_confusion", pd.Series(index=fair.index)).notna()]
    labels = [r for r in rows.fair.values() if r in set(done["row"])]
    if not labels:
        return []
    fig, axes = _figure(len(backbones), len(labels), 1.0 + 3.3 * len(labels), 3.2 * len(backbones))
    for i, backbone in enumerate(backbones):
        for j, row in enumerate(labels):
            ax = axes[i, j]
            cells = done[(done["row"] == row) & (done["backbone"] == backbone)]["test_confusion"]
            if cells.empty:
                ax.set_visible(False)
                continue
            matrix = np.sum([np.asarray(json.loads(c) if isinstance(c, str) else c) for c in cells], axis=0)
            names = classes if len(classes) == len(matrix) else None
            ConfusionMatrixDisplay(matrix, display_labels=names).plot(ax=ax, colorbar=False, cmap="Blues", values_format="d")
            ax.set_title(f"{row}\n{backbone} ({len(cells)} folds)", fontsize=10)
            ax.set(xlabel="Predicted class", ylabel="True class")
            ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    _save(fig, out, "confusion")
    return [Figure("confusion", "Confusion matrices", "Test counts summed over folds × repeats × seeds; rows = true class.")]


def learning_curves(rows: Rows, epochs: pd.DataFrame, val_metric: str, backbones: list[str], colors: dict, out: Path) -> list[Figure]:
    """Train loss and a validation metric per epoch, mean ± 1 SD over the runs of each fair row."""
    if epochs.empty or "epoch" not in epochs:
        return []
    fair = rows.fair_frame()
    owner = fair[fair["status"] == "done"].set_index("run_id")["row"]
    data = epochs[epochs["run_id"].isin(owner.index)].assign(row=lambda e: e["run_id"].map(owner))
    panels = [c for c in ("train_loss", val_metric if val_metric in epochs else "val_f1") if c in data]
    if data.empty or not panels:
        return []
    order = [r for r in rows.fair.values() if r in set(data["row"])]
    fig, axes = _figure(len(panels), len(backbones), 1.0 + 4.0 * len(backbones), 3.2 * len(panels), sharex=True)
    for i, column in enumerate(panels):
        scale = info(column).scale()
        for j, backbone in enumerate(backbones):
            sub = data[data["backbone"] == backbone]
            sub = sub.assign(value=sub[column] * scale)
            ax = axes[i, j]
            if not sub.empty:
                sns.lineplot(data=sub, x="epoch", y="value", hue="row", hue_order=order, palette=colors, errorbar="sd", ax=ax)
            prefix = "Train" if column.startswith("train") else "Validation"
            ax.set(xlabel="Epoch", ylabel=info(column).axis_label(prefix), title=backbone)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_right(fig, axes, "Method")
    fig.tight_layout()
    _save(fig, out, "learning_curves")
    return [Figure("learning_curves", "Learning curves", "Mean over folds with a ±1 SD band; fair rows only.")]
