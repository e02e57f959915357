"""Assemble the whole report folder from an experiment's output folder, published atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchmark.errors import UserError
from benchmark.report import figures as figs
from benchmark.report import html, stats, tables
from benchmark.report.columns import info, normalize_metric
from benchmark.report.load import (
    _load,
    backbone_order,
    check_consistent,
    class_names,
    expected_runs_per_cell,
    read_config,
)
from benchmark.report.provenance import provenance
from benchmark.report.selection import Rows, build_rows
from benchmark.store import atomic_write_csv, atomic_write_text

CALIBRATION = ["test_ece", "test_nll", "test_entropy"]


def _metric_names(metrics: list[str] | None, select_by: str, multiclass: bool) -> tuple[list[str], list[str], str]:
    performance = ["test_accuracy", "test_f1"] + (["test_macro_f1"] if multiclass else [])
    try:
        chosen = [normalize_metric(m, "test") for m in metrics] if metrics else performance
        select = normalize_metric(select_by, "val")
    except ValueError as exc:
        raise UserError(f"--metric/--select-by: {exc}") from None
    if info(select).higher_is_better is None:
        raise UserError(f"--select-by {select_by}: has no better direction; use val_f1, val_accuracy, val_loss, ...")
    return performance, list(dict.fromkeys(chosen)), select


def _status_table(rows: Rows, backbones: list[str], n_expected: int) -> str:
    frame = rows.frame
    counts = frame.assign(done=frame["status"] == "done", failed=frame["status"] != "done")
    counts = counts.groupby(["row", "backbone"])[["done", "failed"]].sum()
    index = pd.MultiIndex.from_product([rows.order, backbones], names=["row", "backbone"])
    counts = counts.reindex(index, fill_value=0).reset_index()
    counts["text"] = [
        f"{d}/{n_expected}" + (f" · {f} failed" if f else "") for d, f in zip(counts["done"], counts["failed"], strict=True)
    ]
    wide = counts.pivot(index="row", columns="backbone", values="text").reindex(index=rows.order, columns=backbones)
    wide.index.name, wide.columns.name = "method", None
    return wide.style.set_caption("Finished runs per cell (done/planned)").to_html()


def _failures(results: pd.DataFrame) -> str:
    failed = results[results["status"] != "done"]
    if failed.empty:
        return ""
    columns = [c for c in ("run_id", "method_label", "backbone", "fold", "repeat", "seed", "error") if c in failed]
    shown = failed[columns].assign(error=failed.get("error", pd.Series("", index=failed.index)).fillna("").astype(str)
                                   .str.split("\n").str[0].str.slice(0, 200))
    return shown.style.hide(axis="index").set_caption(f"Failed runs ({len(failed)})").to_html()


def _selection_counts(rows: Rows) -> pd.DataFrame:
    picked = rows.selections[rows.selections["kind"] == "selected"]
    if picked.empty:
        return picked
    counts = picked.groupby(["method_label", "backbone"]).size().unstack("backbone", fill_value=0)
    counts.index.name, counts.columns.name = "setting", None
    return counts


def _friedman_outputs(rows: Rows, metrics: list[str], directory: Path) -> tuple[list[stats.Friedman], list[str]]:
    results, notes = [], []
    for metric in metrics:
        result = stats.friedman(rows, metric)
        if result is None:
            matrix = stats.block_matrix(rows, metric)
            notes.append(
                f"Friedman test on {metric} skipped: needs ≥ 3 methods and ≥ 2 complete blocks "
                f"(have {matrix.shape[1]} methods, {matrix.shape[0]} complete blocks)."
            )
            continue
        results.append(result)
        atomic_write_csv(directory / f"nemenyi_{metric}.csv", result.nemenyi.reset_index(names="method"))
    table = pd.DataFrame([
        {"metric": r.metric, "blocks": r.n_blocks, "methods": len(r.ranks), "chi2": r.statistic, "p": r.p,
         "mean ranks (1 = best)": "; ".join(f"{k} {v:.2f}" for k, v in r.ranks.sort_values().items())}
        for r in results
    ])
    atomic_write_csv(directory / "friedman.csv", table)
    return results, notes


def _write(output_dir: Path, tmp: Path, oracle: bool, metrics: list[str] | None, select_by: str) -> dict:
    results, epochs = _load(output_dir)
    check_consistent(results, output_dir)
    config, config_text = read_config(output_dir)
    classes = class_names(results)
    performance, stat_metrics, select = _metric_names(metrics, select_by, len(classes) > 2)
    rows = build_rows(results, select, oracle)
    backbones = backbone_order(results, config)
    n_expected = expected_runs_per_cell(results, config)
    name = _experiment_name(config, results, output_dir)
    steps = tqdm(total=6, desc="report", unit="step", leave=False)

    atomic_write_csv(tmp / "results.csv", results)
    atomic_write_csv(tmp / "epochs.csv", epochs)
    summary = tables.summarize(rows, backbones, list(dict.fromkeys(performance + CALIBRATION + stat_metrics)), n_expected)
    atomic_write_csv(tmp / "tables" / "summary.csv", summary)
    perf = summary[summary["metric"].isin(performance)]
    calib = summary[summary["metric"].isin(CALIBRATION)]
    perf_caption = "Test performance: mean ± std over folds (× repeats × seeds); best per column in bold."
    calib_caption = "Calibration: ECE (15 bins, top-label), NLL and mean predictive entropy of the test predictions."
    tables.write_table(perf, tmp / "tables" / "performance", perf_caption)
    tables.write_table(calib, tmp / "tables" / "calibration", calib_caption)
    atomic_write_csv(tmp / "selection.csv", rows.selections)
    steps.update()

    pairwise = stats.pairwise(rows, stat_metrics, backbones)
    atomic_write_csv(tmp / "stats" / "pairwise.csv", pairwise)
    shown = tables.pairwise_display(pairwise)
    atomic_write_text(tmp / "stats" / "pairwise.md", shown.to_markdown(index=False) + "\n" if len(shown) else "")
    friedmans, notes = _friedman_outputs(rows, stat_metrics, tmp / "stats")
    steps.update()

    colors = figs.palette(list(rows.fair.values()))
    fig_dir = tmp / "figures"
    figures = figs.performance(rows, performance, backbones, colors, fig_dir)
    figures += figs.sweeps(rows, ["test_f1", "test_accuracy"], backbones, colors, fig_dir)
    figures += [figs.cd_diagram(r, fig_dir) for r in friedmans]
    steps.update()
    figures += figs.reliability(rows, output_dir, backbones, colors, fig_dir)
    steps.update()
    figures += figs.confusion(rows, backbones, classes, fig_dir)
    figures += figs.learning_curves(rows, epochs, select, backbones, colors, fig_dir)
    steps.update()

    settings = int((rows.frame.drop_duplicates("row")["kind"] == "setting").sum())
    planned = settings * len(backbones) * n_expected
    n_done, n_failed = int((results["status"] == "done").sum()), int((results["status"] != "done").sum())
    warnings = []
    if n_done < planned:
        warnings.append(
            f"Partial results: {n_done} of {planned} planned runs done ({n_failed} failed). Cells with fewer runs "
            "show (n/N); statistics use done runs only."
        )
    if rows.baseline is None:
        warnings.append("No 'ce' runs: the pairwise comparisons against the baseline are skipped.")
    friedman_table = pd.read_csv(tmp / "stats" / "friedman.csv") if friedmans else pd.DataFrame()
    audit = output_dir / "audit.md"
    selection = _selection_counts(rows)
    page = html.render(
        name=name,
        tables=[tables.to_html(perf, perf_caption), tables.to_html(calib, calib_caption)],
        pairwise=shown.style.hide(axis="index").set_caption("Against the baseline").to_html() if len(shown) else "",
        friedman=friedman_table.style.hide(axis="index").format(precision=4).set_caption("Friedman test").to_html()
        if len(friedman_table) else "",
        stat_notes=notes, figures=figures, figure_dir=fig_dir, status=_status_table(rows, backbones, n_expected),
        failures=_failures(results), selection=selection.style.to_html() if len(selection) else "",
        audit_md=audit.read_text() if audit.is_file() else "", config=config_text,
        provenance=provenance(results, output_dir, n_expected), warnings=warnings, baseline=rows.baseline,
        select_by=select, oracle=oracle,
    )
    atomic_write_text(tmp / "index.html", page)
    steps.update()
    steps.close()
    return {"name": name}


def _experiment_name(config: dict, results: pd.DataFrame, output_dir: Path) -> str:
    names = results.get("experiment", pd.Series(dtype=object)).dropna()
    return str(config.get("name") or (names.iloc[0] if len(names) else output_dir.name))


def _publish(tmp: Path, out_dir: Path) -> None:
    """Swap the finished folder into place; an older report is replaced only once the new one is complete."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def build_report(
    output_dir: Path, out_dir: Path, oracle: bool = False, *, metrics: list[str] | None = None, select_by: str = "val_f1"
) -> Path:
    """Write the report for `output_dir` into `out_dir` and return the path of its index.html."""
    output_dir, out_dir = Path(output_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write(output_dir, tmp, oracle, metrics, select_by)
        _publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "index.html"


def default_out_dir(output_dir: Path) -> Path:
    """reports/<experiment name> relative to the working directory."""
    config, _ = read_config(Path(output_dir))
    return Path("reports") / str(config.get("name") or Path(output_dir).name)
