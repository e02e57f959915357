"""Assemble the whole report folder from an experiment's output folder, published atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchmark import experiment
from benchmark.atomic import atomic_write_csv, atomic_write_text
from benchmark.design import report_warnings
from benchmark.errors import UserError
from benchmark.pages import html_table, markdown_table
from benchmark.report import decisions, html, stats, tables
from benchmark.report import figures as figs
from benchmark.report import forest as forests
from benchmark.report.columns import info, normalize_metric
from benchmark.report.load import (
    _load,
    backbone_order,
    check_consistent,
    class_names,
    expected_runs_per_cell,
    read_config,
)
from benchmark.report.provenance import mixed_environments, provenance
from benchmark.report.publish import check_replaceable, publish, recover, staging, write_marker
from benchmark.report.selection import Rows, build_rows
from benchmark.report.tuning import budget_table, partial_tuning, tuning_note

CALIBRATION = ["test_ece", "test_nll", "test_entropy"]
PERF_CAPTION = "Test performance: mean ± std over folds (× repeats × seeds); best per column in bold."
CALIB_CAPTION = "Calibration: ECE (15 bins, top-label), NLL and mean predictive entropy of the test predictions."


def macro_headline(classes: list[str], config: dict) -> bool:
    """More than two classes and no data.positive: macro-F1 is the headline, not the F1 of whichever class is second."""
    return experiment.macro_headline(len(classes), (config.get("data") or {}).get("positive"))


def performance_metrics(classes: list[str], config: dict) -> list[str]:
    """The table's and figures' headline metrics: accuracy and the positive class's F1 (+ macro-F1 for >2 classes);
    accuracy and macro-F1 alone for >2 classes without a positive class."""
    if macro_headline(classes, config):
        return ["test_accuracy", "test_macro_f1"]
    return ["test_accuracy", "test_f1"] + (["test_macro_f1"] if len(classes) > 2 else [])


def _metric_names(metrics: list[str] | None, select_by: str | None, classes: list[str],
                  config: dict) -> tuple[list[str], list[str], str]:
    performance = performance_metrics(classes, config)
    if select_by is None:
        select_by = "val_macro_f1" if macro_headline(classes, config) else "val_f1"
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
    return html_table(wide.style.hide(axis="index", names=True), "Finished runs per cell (done/planned)")


def _failures(results: pd.DataFrame) -> str:
    failed = results[results["status"] != "done"]
    if failed.empty:
        return ""
    columns = [c for c in ("run_id", "method_label", "backbone", "fold", "repeat", "seed", "error") if c in failed]
    shown = failed[columns].assign(error=failed.get("error", pd.Series("", index=failed.index)).fillna("").astype(str)
                                   .str.split("\n").str[0].str.slice(0, 200))
    return html_table(shown.style.hide(axis="index"), f"Failed runs ({len(failed)})")


def _selection_counts(rows: Rows, backbones: list[str]) -> str:
    """How often each setting was chosen, per backbone (HTML)."""
    picked = rows.selections[rows.selections["kind"] == "selected"]
    if picked.empty:
        return ""
    counts = picked.groupby(["method_label", "backbone"]).size().unstack("backbone", fill_value=0)
    order = [r for r in rows.order if r in counts.index]
    counts = counts.reindex(index=order, columns=[b for b in backbones if b in counts.columns], fill_value=0)
    return html_table(counts.style.hide(axis="index", names=True))


def _friedman_outputs(rows: Rows, metrics: list[str], directory: Path) -> tuple[list[stats.Friedman], pd.DataFrame, list[str]]:
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
    columns = ["metric", "label", "blocks", "methods", "chi2", "p", "mean ranks (1 = best)"]
    table = pd.DataFrame([
        {"metric": r.metric, "label": tables.column_label(r.metric), "blocks": r.n_blocks, "methods": len(r.ranks), "chi2": r.statistic, "p": r.p,
         "mean ranks (1 = best)": "; ".join(f"{k} {v:.2f}" for k, v in r.ranks.sort_values().items())}
        for r in results
    ], columns=columns)
    atomic_write_csv(directory / "friedman.csv", table)
    return results, table, notes


@dataclass
class _Report:
    """Everything the report steps share."""

    output_dir: Path
    results: pd.DataFrame
    epochs: pd.DataFrame
    config_text: str
    name: str
    classes: list[str]
    performance: list[str]
    stat_metrics: list[str]
    select_by: str
    oracle: bool
    rows: Rows
    backbones: list[str]
    n_expected: int
    positive: str | None
    config: dict
    budget: pd.DataFrame | None = None
    tmp: Path = Path()
    rope_pp: float = decisions.verdicts.DEFAULT_ROPE_PP
    decide_pp: float = decisions.power.DEFAULT_DECIDE_PP
    decided: decisions.Decisions | None = None


def _positive(results: pd.DataFrame) -> str | None:
    names = results.get("positive", pd.Series(dtype=object)).dropna()
    return str(names.iloc[0]) if len(names) else None


def _prepare(output_dir: Path, oracle: bool, metrics: list[str] | None, select_by: str | None) -> _Report:
    results, epochs = _load(output_dir)
    check_consistent(results, output_dir)
    config, config_text = read_config(output_dir)
    classes = class_names(results)
    performance, stat_metrics, select = _metric_names(metrics, select_by, classes, config)
    positive = None if macro_headline(classes, config) else _positive(results)
    return _Report(
        output_dir, results, epochs, config_text, _experiment_name(config, results, output_dir), classes,
        performance, stat_metrics, select, oracle, build_rows(results, select, oracle),
        backbone_order(results, config), expected_runs_per_cell(results, config), positive, config,
        budget_table(results, config),
    )


def _write_tables(r: _Report) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results/epochs copies, the long summary, the performance and calibration tables, the selections."""
    atomic_write_csv(r.tmp / "results.csv", r.results.drop(columns=r.results.attrs.get("added_columns", [])))
    atomic_write_csv(r.tmp / "epochs.csv", r.epochs)
    metrics = list(dict.fromkeys(r.performance + CALIBRATION + r.stat_metrics))
    summary = tables.summarize(r.rows, r.backbones, metrics, r.n_expected)
    atomic_write_csv(r.tmp / "tables" / "summary.csv", summary)
    perf = summary[summary["metric"].isin(r.performance)]
    calib = summary[summary["metric"].isin(CALIBRATION)]
    tables.write_table(perf, r.tmp / "tables" / "performance", PERF_CAPTION)
    tables.write_table(calib, r.tmp / "tables" / "calibration", CALIB_CAPTION)
    atomic_write_csv(r.tmp / "selection.csv", r.rows.selections)
    if r.budget is not None and len(r.budget):
        atomic_write_csv(r.tmp / "tables" / "tuning.csv", r.budget)
    return perf, calib


def _write_stats(r: _Report) -> tuple[pd.DataFrame, pd.DataFrame, list[stats.Friedman], list[str]]:
    pairwise = stats.pairwise(r.rows, r.stat_metrics, r.backbones)
    atomic_write_csv(r.tmp / "stats" / "pairwise.csv", pairwise)
    shown = tables.pairwise_display(pairwise)
    atomic_write_text(r.tmp / "stats" / "pairwise.md", markdown_table(shown, index=False) + "\n" if len(shown) else "")
    friedmans, table, notes = _friedman_outputs(r.rows, r.stat_metrics, r.tmp / "stats")
    r.decided = decisions.decide(r.rows, r.stat_metrics, r.backbones, r.results, r.output_dir, len(r.classes),
                                 r.rope_pp, r.decide_pp)
    decisions.write(r.decided, r.tmp / "stats", r.backbones)
    return shown, table, friedmans, notes


def _write_figures(r: _Report, friedmans: list[stats.Friedman]) -> list[figs.Figure]:
    colors = figs.palette(list(r.rows.fair.values()))
    out = r.tmp / "figures"
    return [
        *figs.performance(r.rows, r.performance, r.backbones, colors, out),
        *figs.sweeps(r.rows, [r.performance[1], "test_accuracy"], r.backbones, colors, out),
        *forests.grid(r.decided.verdicts, r.backbones, out),
        *forests.forest(r.decided.verdicts, r.backbones, out),
        *[figs.cd_diagram(f, colors, out) for f in friedmans],
        *figs.reliability(r.rows, r.output_dir, r.backbones, colors, out),
        *figs.confusion(r.rows, r.backbones, r.classes, out),
        *figs.learning_curves(r.rows, r.epochs, r.select_by, r.backbones, colors, out),
    ]


def _warnings(r: _Report) -> list[str]:
    settings = int((r.rows.frame.drop_duplicates("row")["kind"] == "setting").sum())
    planned = settings * len(r.backbones) * r.n_expected
    n_done, n_failed = int((r.results["status"] == "done").sum()), int((r.results["status"] != "done").sum())
    out = []
    if n_done < planned:
        out.append(
            f"Partial results: {n_done} of {planned} planned runs done ({n_failed} failed). Cells with fewer runs "
            "show (n/N); statistics use done runs only."
        )
    if r.rows.baseline is None:
        out.append("No 'ce' runs: the pairwise comparisons against the baseline are skipped.")
    tuning = partial_tuning(r.budget, r.config) if r.budget is not None else None
    if tuning:
        out.append(tuning)
    mixed = mixed_environments(r.results)
    if mixed:
        out.append(mixed)
    same = same_objective(r.results)
    if same:
        out.append(same)
    return out + [f"Design: {w}." for w in report_warnings(r.results, r.config)]


def same_objective(results: pd.DataFrame) -> str:
    """max_entropy(γ=g) and confidence_penalty(β=g) without a threshold are one objective (CE − g·H): said, not hidden."""
    def values(method: str, param: str) -> set[float]:
        rows = results[results["method"] == method] if "method" in results else results.iloc[:0]
        if method == "confidence_penalty" and "param_threshold" in rows:
            rows = rows[rows["param_threshold"].isna()]
        return set(rows[f"param_{param}"].dropna()) if f"param_{param}" in rows else set()

    shared = sorted(values("max_entropy", "gamma") & values("confidence_penalty", "beta"))
    if not shared:
        return ""
    shown = ", ".join(f"{g:g}" for g in shared)
    return (f"max_entropy (γ = {shown}) and confidence_penalty (β = {shown}, no threshold) are the same objective "
            "(CE − γ·H): their rows are one computation trained twice, not two methods.")


def _pairwise_html(shown: pd.DataFrame, baseline: str | None) -> str:
    if shown.empty:
        return ""
    table = shown.drop(columns="baseline").set_index(["metric", "backbone", "method"])
    table.index.names = [None, None, None]
    return html_table(table.style, f"Against the baseline ({baseline})")


def _write_page(r: _Report, perf: pd.DataFrame, calib: pd.DataFrame, shown: pd.DataFrame, friedman: pd.DataFrame,
                notes: list[str], figures: list[figs.Figure]) -> None:
    audit = r.output_dir / "audit.md"
    explain = r.output_dir / "explain" / "explain.md"
    page = html.render(
        name=r.name,
        tables=[tables.to_html(perf, PERF_CAPTION), tables.to_html(calib, CALIB_CAPTION)],
        pairwise=_pairwise_html(shown, r.rows.baseline),
        friedman=html_table(friedman.drop(columns="metric").rename(columns={"label": "metric"}).style.hide(axis="index"),
                            "Friedman test", precision=4) if len(friedman) else "",
        stat_notes=notes, figures=figures, figure_dir=r.tmp / "figures",
        status=_status_table(r.rows, r.backbones, r.n_expected), failures=_failures(r.results),
        selection=_selection_counts(r.rows, r.backbones),
        audit_md=audit.read_text() if audit.is_file() else "", config=r.config_text,
        explain_md=explain.read_text() if explain.is_file() else "", explain_dir=explain.parent,
        provenance=provenance(r.results, r.output_dir, r.n_expected), warnings=_warnings(r),
        baseline=r.rows.baseline, select_by=r.select_by, oracle=r.oracle, f1_note=_f1_note(r),
        tuning_note=tuning_note(r.budget, r.config), decisions=decisions.html(r.decided, r.backbones),
        decision_lines=r.decided.lines, decision_notes=r.decided.notes, rope_pp=r.rope_pp, decide_pp=r.decide_pp,
    )
    atomic_write_text(r.tmp / "index.html", page)


def _f1_note(r: _Report) -> str:
    """What 'F1' means in this report."""
    if r.performance[1] == "test_macro_f1":
        return (f"{len(r.classes)} classes and no data.positive: macro-F1 is the headline (and picks a grid's setting "
                "by default); the F1 of one class would depend on which class sorts second.")
    return f"F1, precision and recall are those of the positive class '{r.positive}'." if r.positive else ""


def _write(report: _Report, plots: bool) -> None:
    with tqdm(total=4, desc="report", unit="step", leave=False) as steps:
        perf, calib = _write_tables(report)
        steps.update()
        shown, friedman, friedmans, notes = _write_stats(report)
        steps.update()
        figures = _write_figures(report, friedmans) if plots else []
        steps.update()
        _write_page(report, perf, calib, shown, friedman, notes, figures)
        steps.update()


def _experiment_name(config: dict, results: pd.DataFrame, output_dir: Path) -> str:
    names = results.get("experiment", pd.Series(dtype=object)).dropna()
    return str(config.get("name") or (names.iloc[0] if len(names) else output_dir.name))


def _readable(root: Path) -> None:
    """Folders 0755 and files 0644 (less the umask): temp files are created private."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def build_report(
    output_dir: Path,
    out_dir: Path,
    oracle: bool = False,
    *,
    metrics: list[str] | None = None,
    select_by: str | None = None,
    figures: bool = True,
    rope_pp: float = decisions.verdicts.DEFAULT_ROPE_PP,
    decide_pp: float = decisions.power.DEFAULT_DECIDE_PP,
) -> Path:
    """Write the report for `output_dir` into `out_dir` and return the path of its index.html.

    `metrics`: test metrics for the statistics (default: the headline metrics, see `performance_metrics`);
    `select_by`: the inner-validation score that picks a grid's setting (default val_f1; val_macro_f1 for >2 classes
    without data.positive); `figures=False` skips the plots (tables and statistics only); `rope_pp`: the region of
    practical equivalence (± percentage points) of the verdicts; `decide_pp`: the difference the cost lines size for.
    `out_dir` must be new, empty or a report folder (see `benchmark.report.publish`); nothing is written when the inputs are refused.
    """
    output_dir, given = Path(output_dir), Path(out_dir)
    target = Path(os.path.abspath(given))
    if target.parent == target:
        raise UserError(f"--out {given}: give a report folder, not the file system root")
    recover(target)
    check_replaceable(target, output_dir)
    report = _prepare(output_dir, oracle, metrics, select_by)
    report.rope_pp, report.decide_pp = rope_pp, decide_pp
    with staging(target) as tmp:
        report.tmp = tmp
        _write(report, figures)
        write_marker(tmp, output_dir)
        _readable(tmp)
        publish(tmp, target)
    return given / "index.html"


def default_out_dir(output_dir: Path) -> Path:
    """reports/<experiment name> relative to the working directory."""
    config, _ = read_config(Path(output_dir))
    return Path("reports") / str(config.get("name") or Path(output_dir).name)
