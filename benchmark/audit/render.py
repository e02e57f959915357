"""The audit as a Markdown section (for the report) and as a short plain-text summary (for the terminal)."""

from __future__ import annotations

from benchmark.audit.findings import CAUTION, WARNING, majority_phrase, set_severity
from benchmark.errors import safe_name
from benchmark.pages import md_cell

LABELS = {"warning": "Warning", "caution": "Caution", "info": "Note"}
MAX_EXAMPLES = 5


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _spread(d: dict, digits: int = 0) -> str:
    if d["min"] is None:
        return "-"
    return " / ".join(f"{d[k]:.{digits}f}" for k in ("min", "median", "max"))


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _settings_line(result: dict) -> str:
    s = result["settings"]
    resize = f"via {s['via']} px" if s["resize_policy"] == "via" else s["resize_policy"]
    return f"model input {s['image_size']} px, resize {resize}, folds: {s['folds']} ({s['n_folds']})"


def _findings_md(result: dict) -> list[str]:
    if not result["findings"]:
        return ["No problems found.", ""]
    lines = []
    for f in result["findings"]:
        todo = f" *What to do:* {f['mitigation']}." if f["mitigation"] else ""
        lines.append(f"- **{LABELS[f['severity']]}:** {f['message']}{todo}")
    return lines + [""]


def _classes_md(inv: dict) -> list[str]:
    rows = [
        [c["name"], c["count"], _counts(c["formats"]), _counts(c["modes"]), _counts(c["extensions"]),
         _spread(c["width"]), _spread(c["height"]), _spread(c["aspect"], 2)]
        for c in inv["classes"]
    ]
    ratio = inv["imbalance_ratio"]
    head = [f"{inv['n_files']} files, {inv['n_readable']} readable; imbalance (largest / smallest class): "
            f"{'-' if ratio is None else f'{ratio:.1f}'}.", ""]
    return head + _table(
        ["class", "images", "formats", "modes", "extensions", "width min/median/max", "height min/median/max",
         "aspect min/median/max"],
        rows,
    )


def _duplicates_md(dup: dict, class_names: list[str]) -> list[str]:
    exact, near = dup["exact"], dup["near"]
    lines = [
        f"Exact duplicates (identical bytes): {exact['groups']} group(s), {exact['files']} files, "
        f"{exact['redundant_copies']} redundant copies; {exact['cross_class_groups']} group(s) span classes.",
        f"Near-duplicates ({near['method']}, at most {near['threshold']} of 64 bits differ): {near['pairs']} pair(s), "
        f"{near['cross_class_pairs']} across classes.",
        "",
    ]
    rows = [
        [name, exact["redundant_per_class"].get(name, 0), near["pairs_per_class"].get(name, 0),
         dup["files_with_duplicate_per_class"].get(name, 0)]
        for name in class_names
    ]
    lines += _table(["class", "redundant exact copies", "near pairs", "files with a duplicate"], rows)
    examples = [f"- `{', '.join(map(safe_name, g['files']))}`" for g in exact["list"][:MAX_EXAMPLES]]
    examples += [f"- `{safe_name(p['a'])}` ~ `{safe_name(p['b'])}` (distance {p['distance']})"
                 for p in near["list"][:MAX_EXAMPLES]]
    if examples:
        lines += ["Examples (all are listed in audit.json):", "", *examples, ""]
    return lines


def _leakage_md(leak: dict) -> list[str]:
    if not leak["available"]:
        return ["Not checked: no folds given.", ""]
    rows = [
        [f"{r['repeat']}/{r['fold']}", r["test"], r["leaked_exact"], r["leaked_near"], _pct(r["leaked_fraction"]),
         r["label_conflicts"], r["val_leaked"]]
        for r in leak["folds"]
    ]
    lines = [
        f"Test images with an identical or near-identical image in the same fold's training part (train + validation): "
        f"{leak['total_leaked']} of {leak['total_test']} ({_pct(leak['pooled_leaked_fraction'])}); per fold mean "
        f"{_pct(leak['mean_leaked_fraction'])}, max {_pct(leak['max_leaked_fraction'])}.",
        "",
    ]
    lines += _table(["repeat/fold", "test images", "leaked (exact)", "leaked (near only)", "leaked %",
                     "leaked with another label", "validation images leaked from train"], rows)
    examples = [e for r in leak["folds"] for e in r["examples"]][:MAX_EXAMPLES]
    if examples:
        lines += ["Examples:", ""]
        lines += [f"- test `{e['test']}` = train `{e['train']}` ({e['kind']}, distance {e['distance']})" for e in examples]
        lines.append("")
    return lines


def _singled_out(row: dict, flag_at: float) -> str:
    per_class = row.get("per_class_f1", {})
    return ", ".join(f"{name} {value:.1%}" for name, value in per_class.items() if value is not None and value >= flag_at)


def _task_rows(task: dict, flag_at: float) -> list[list[object]]:
    binary = task["positive"] is not None
    maj = task["majority"]
    rows = [["always the training part's most common class", _pct(maj["accuracy"]), _pct(maj["balanced_accuracy"]),
             _pct(maj.get("f1")) if binary else _pct(maj["macro_f1"]), "", ""]]
    for s in task["sets"]:
        singled = "" if binary else _singled_out(s, flag_at)
        flag = {WARNING: "**yes**", CAUTION: "*maybe*"}.get(set_severity(task, s), "")
        rows.append([s["title"], f"{s['accuracy']:.1%} ± {s['accuracy_std']:.1%}", _pct(s["balanced_accuracy"]),
                     _pct(s.get("f1")) if binary else _pct(s["macro_f1"]), singled, flag])
    return rows


def _shortcuts_md(sc: dict) -> list[str]:
    lines = [f"Classifier: {sc['classifier']}; {sc['protocol']}. A feature set is flagged when its balanced accuracy, "
             f"or its F1 for one class (telling that class from all others), reaches {sc['warn_balanced_accuracy']:.0%} "
             "(**yes**); *maybe*: balanced accuracy at least halfway from chance to 100%.",
             ""]
    for task in sc["tasks"]:
        counts = ", ".join(f"{n} {c}" for n, c in zip(task["classes"], task["counts"], strict=True))
        lines += [f"#### Predicting {task['title']}", "", f"Images: {counts}.", ""]
        if not task["sets"]:
            lines += ["Not evaluated: too few images per class for the folds.", ""]
            continue
        f1 = f"F1 ({task['positive']})" if task["positive"] is not None else "macro-F1"
        lines += _table(["features", "accuracy (± std over folds)", "balanced accuracy", f1,
                         "singles out a class (its F1 ≥ flag)", "shortcut"],
                        _task_rows(task, sc["warn_balanced_accuracy"]))
    return lines


def render_markdown(result: dict) -> str:
    """The audit as one Markdown section (## Data audit), for audit.md and the report's index.html."""
    lines = [
        "## Data audit",
        "",
        f"Dataset `{result['dataset']['root']}` (fingerprint {result['dataset']['fingerprint']}); {_settings_line(result)}.",
        "",
        "### Findings",
        "",
        *_findings_md(result),
        "### Classes",
        "",
        *_classes_md(result["inventory"]),
        "### Duplicates",
        "",
        *_duplicates_md(result["duplicates"], result["dataset"]["classes"]),
        "### Duplicates across training and test (leakage)",
        "",
        *_leakage_md(result["leakage"]),
        "### Shortcut check",
        "",
        *_shortcuts_md(result["shortcuts"]),
    ]
    bad = result["inventory"]["unreadable"]
    if bad:
        lines += ["### Unreadable files", "", *(f"- `{safe_name(b['file'])}`: {safe_name(b['reason'])}" for b in bad), ""]
    return "\n".join(lines).rstrip() + "\n"


def render_summary(result: dict) -> str:
    """A short plain-text summary for the terminal."""
    inv = result["inventory"]
    counts = ", ".join(f"{c['name']} {c['count']}" for c in inv["classes"])
    lines = [f"Data audit of {safe_name(result['dataset']['root'])}: {inv['n_files']} files ({counts})", _settings_line(result), ""]
    task = result["shortcuts"]["tasks"][0]
    if task["sets"]:
        lines.append(f"Shortcut check, predicting {task['title']} ({majority_phrase(task)}):")
        for s in task["sets"]:
            lines.append(f"  {s['title']:<58} accuracy {s['accuracy']:6.1%}   balanced {s['balanced_accuracy']:6.1%}")
        lines.append("")
    if not result["findings"]:
        lines.append("No problems found.")
    for f in result["findings"]:
        lines.append(f"{LABELS[f['severity']].upper()}: {f['message']}")
        if f["mitigation"]:
            lines.append(f"    what to do: {f['mitigation']}")
    return "\n".join(lines)

