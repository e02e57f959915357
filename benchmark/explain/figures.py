"""Figures of the explain command: CAM grids, noise curves, PCA scatters and diversity bars (PNG)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from pytorch_grad_cam.utils.image import show_cam_on_image  # noqa: E402

PANEL_IN = 1.35
METRIC_TITLES = {
    "accuracy": "accuracy",
    "f1": "F1 (positive class)",
    "macro_f1": "macro F1",
    "pearson": "map correlation (Pearson r)",
    "iou_top20": "top-20% region IoU",
}
NOISE_TITLES = {"gaussian": "Gaussian noise σ", "salt_pepper": "salt-and-pepper fraction"}


@dataclass
class CamColumn:
    """One column of a CAM grid: header, maps [R, H, W] in [0, 1], a title per row and whether that row is wrong."""

    header: str
    maps: np.ndarray
    titles: list[str]
    wrong: list[bool]


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def cam_grid(images: np.ndarray, row_labels: list[str], columns: list[CamColumn], title: str, path: Path) -> None:
    """Rows = images (uint8 [R, H, W, 3]); columns = the input, then one overlay per (run, CAM method)."""
    rows, ncols = len(images), len(columns) + 1
    fig, axes = plt.subplots(rows, ncols, figsize=(PANEL_IN * ncols, PANEL_IN * 1.18 * rows + 0.6), squeeze=False)
    for r in range(rows):
        rgb = images[r].astype(np.float32) / 255.0
        axes[r, 0].imshow(images[r])
        axes[r, 0].set_title(row_labels[r], fontsize=7)
        for c, column in enumerate(columns, start=1):
            axes[r, c].imshow(show_cam_on_image(rgb, column.maps[r], use_rgb=True, image_weight=0.5))
            axes[r, c].set_title(column.titles[r], fontsize=7, color="firebrick" if column.wrong[r] else "black")
    for c, column in enumerate(columns, start=1):
        axes[0, c].set_title(f"{column.header}\n{column.titles[0]}", fontsize=7,
                             color="firebrick" if column.wrong[0] else "black")
    axes[0, 0].set_title(f"input\n{row_labels[0]}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def noise_curves(frame: pd.DataFrame, title: str, path: Path, f1: str = "f1") -> None:
    """Rows = noise kinds, columns = metrics (`f1`: f1 or macro_f1); one line per run, a dash style per CAM method."""
    frame = frame.rename(columns={"label": "method", "cam": "CAM"})
    kinds = list(dict.fromkeys(frame["noise"]))
    metrics = [m for m in ("accuracy", f1, "pearson", "iou_top20") if m in frame and frame[m].notna().any()]
    order = list(dict.fromkeys(frame["method"]))
    colors = dict(zip(order, sns.color_palette("colorblind", len(order)), strict=False))
    fig, axes = plt.subplots(len(kinds), len(metrics), figsize=(3.1 * len(metrics), 2.6 * len(kinds) + 0.5),
                             squeeze=False)
    for i, kind in enumerate(kinds):
        part = frame[frame["noise"] == kind]
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            style = "CAM" if metric in ("pearson", "iou_top20") and part["CAM"].nunique() > 1 else None
            data = part if style else part.drop_duplicates(["method", "level"])
            marks = {"style": style, "markers": True} if style else {"marker": "o"}
            sns.lineplot(data=data, x="level", y=metric, hue="method", hue_order=order, palette=colors, ax=ax,
                         legend=(i == 0 and j == len(metrics) - 1), errorbar=None, **marks)
            ax.set_xlabel(NOISE_TITLES.get(kind, kind))
            ax.set_ylabel(METRIC_TITLES[metric])
            ax.set_ylim(-0.05 if metric == "pearson" else 0.0, 1.02)
            ax.grid(alpha=0.3)
    legend_ax = axes[0, len(metrics) - 1]
    if legend_ax.get_legend() is not None:
        sns.move_legend(legend_ax, "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def pca_scatter(points: dict[str, np.ndarray], labels: np.ndarray, class_names: list[str], subtitles: dict[str, str],
                title: str, path: Path) -> None:
    """One panel per run: the test images' features on their first two principal components, coloured by class."""
    n = len(points)
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 3.2), squeeze=False)
    names = np.asarray(class_names, dtype=object)[labels]
    for ax, (label, xy) in zip(axes[0], points.items(), strict=True):
        sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=names, hue_order=class_names, s=10, alpha=0.7, linewidth=0,
                        palette="colorblind", ax=ax, legend=ax is axes[0, -1])
        ax.set_title(f"{label}\n{subtitles.get(label, '')}", fontsize=8)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.set_xticks([])
        ax.set_yticks([])
    if axes[0, -1].get_legend() is not None:
        sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, title=None, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def diversity_bars(frame: pd.DataFrame, path: Path) -> None:
    """Effective rank of the penultimate features per run, grouped by backbone."""
    order = list(dict.fromkeys(frame["label"]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * frame["backbone"].nunique() * max(len(order), 1) * 0.5 + 2), 3.2))
    sns.barplot(data=frame, x="backbone", y="effective_rank", hue="label", hue_order=order, palette="colorblind", ax=ax)
    ax.set_ylabel("effective rank exp(H)")
    ax.set_xlabel("")
    ax.set_title("Feature diversity of the test images (higher = more diverse features)", fontsize=9)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, title=None, frameon=False)
    fig.tight_layout()
    _save(fig, path)
