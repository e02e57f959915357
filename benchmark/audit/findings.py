"""Turn the audit's numbers into plain-language findings, most severe first."""

from __future__ import annotations

from benchmark.audit.shortcuts import FEATURE_SETS, WARN_BALANCED
from benchmark.errors import safe_name

WARNING, CAUTION, INFO = "warning", "caution", "info"
ORDER = {WARNING: 0, CAUTION: 1, INFO: 2}
IMBALANCE_NOTE = 3.0
LEAK_WARNING = 0.01
MAX_NAMED = 5

PHRASES = {
    "format": "the file format",
    "size": "the image size (width, height, aspect ratio)",
    "colour": "the mean colour and contrast",
    "metadata": "the file metadata (format, mode, size, colour)",
    "input_sharpness": "the sharpness of the {size} px model input",
    "input": "simple statistics of the {size} px model input (sharpness, mean colour, contrast)",
}
RESIZE_HINT = (
    "down-sample every crop to one small size first: data.resize: {policy: via, via: 24} "
    "(folder mode: --resize via --via 24), then run the audit again"
)


def _finding(severity: str, topic: str, message: str, mitigation: str | None = None) -> dict:
    return {"severity": severity, "topic": topic, "message": message, "mitigation": mitigation}


def _severity(balanced: float, chance: float) -> str | None:
    if balanced >= WARN_BALANCED:
        return WARNING
    if balanced >= chance + 0.5 * (1.0 - chance):
        return CAUTION
    return None


def set_severity(task: dict, row: dict) -> str | None:
    """warning: balanced accuracy or one class's F1 reaches the flag; caution: balanced accuracy halfway to perfect."""
    severity = _severity(row["balanced_accuracy"], task["chance_balanced_accuracy"])
    if any(v is not None and v >= WARN_BALANCED for v in row.get("per_class_f1", {}).values()):
        return WARNING
    return severity


def _consequence(key: str, kind: str) -> tuple[str, str | None]:
    """What a shortcut of this feature set means for a model, and what to do."""
    if kind == "input":
        return "a model can score this without looking at the solder.", RESIZE_HINT
    if key == "format":
        return (
            "the classes were stored differently, so they were probably collected differently.",
            "a model never sees the file format; check the model-input rows to see whether the difference reaches the pixels",
        )
    if key == "colour":
        return (
            "brightness or colour differs between the classes.",
            "check lighting/camera per class; colour-jitter augmentation or grey-scale input weakens this cue",
        )
    return (
        "if the size difference reaches the model's input (up-scaling blurs small crops), a model can score this "
        "without looking at the solder.",
        RESIZE_HINT,
    )


def _set_finding(task: dict, row: dict, image_size: int) -> dict | None:
    """The strongest statement about one feature set: overall shortcut, else one class singled out."""
    phrase = f"From {PHRASES[row['key']].format(size=image_size)} alone, a trivial classifier"
    merged = None if task["key"] == "task" else task["key"].split(":", 1)[1]
    what = "the label" if merged is None else f"which of its folders a {merged!r} image came from"
    others = "the other classes" if merged is None else f"the other folders merged into {merged!r}"
    consequence, mitigation = _consequence(row["key"], row["kind"])
    severity = _severity(row["balanced_accuracy"], task["chance_balanced_accuracy"])
    singled_out = {k: v for k, v in row.get("per_class_f1", {}).items() if v is not None and v >= WARN_BALANCED}
    if severity != WARNING and singled_out:
        singled = ", ".join(f"{name!r} (F1 {value:.1%})" for name, value in singled_out.items())
        message = f"{phrase} tells {singled} apart from {others}: {consequence}"
        return _finding(WARNING, f"shortcut:{task['key']}:{row['key']}", message, mitigation)
    if severity is None:
        return None
    message = (
        f"{phrase} predicts {what} with {row['accuracy']:.1%} accuracy (balanced {row['balanced_accuracy']:.1%}; "
        f"always guessing the most common class: {task['majority']['accuracy']:.1%}): {consequence}"
    )
    return _finding(severity, f"shortcut:{task['key']}:{row['key']}", message, mitigation)


def _shortcut_findings(shortcuts: dict, image_size: int) -> list[dict]:
    combines = {s.key: s.combines for s in FEATURE_SETS}
    out = []
    for task in shortcuts["tasks"]:
        found = {row["key"]: _set_finding(task, row, image_size) for row in task["sets"]}
        for key, finding in found.items():
            if finding is None:
                continue
            covered = [found.get(part) for part in combines[key]]
            if any(c is not None and ORDER[c["severity"]] <= ORDER[finding["severity"]] for c in covered):
                continue
            out.append(finding)
    return out


def _label_conflicts(exact: dict, near: dict) -> list[str]:
    """Each identical group and near-identical pair with more than one label, as 'file' = 'file' (labels a, b)."""
    groups = [
        " = ".join(repr(f) for f in g["files"]) + f" (labels {', '.join(g['classes'])})"
        for g in exact["list"] if len(g["classes"]) > 1
    ]
    pairs = [
        f"{p['a']!r} ~ {p['b']!r} (labels {p['class_a']}, {p['class_b']}; distance {p['distance']})"
        for p in near["list"] if p["class_a"] != p["class_b"]
    ]
    return groups + pairs


def _duplicate_findings(duplicates: dict) -> list[dict]:
    out = []
    exact, near = duplicates["exact"], duplicates["near"]
    if exact["cross_class_groups"] or near["cross_class_pairs"]:
        conflicts = _label_conflicts(exact, near)
        total = exact["cross_class_groups"] + near["cross_class_pairs"]
        listed = "; ".join(conflicts[:MAX_NAMED]) + (f"; and {total - MAX_NAMED} more" if total > MAX_NAMED else "")
        out.append(
            _finding(
                WARNING, "label-conflicts",
                f"{exact['cross_class_groups']} group(s) of identical files and {near['cross_class_pairs']} near-identical "
                f"pair(s) carry different labels: the same image is labelled twice: {listed}.",
                "decide the right label and delete the other copy (audit.json lists every conflict)",
            )
        )
    if exact["groups"]:
        per_class = ", ".join(f"{k} {v}" for k, v in exact["redundant_per_class"].items())
        out.append(
            _finding(
                CAUTION, "exact-duplicates",
                f"{exact['files']} files are byte-identical copies in {exact['groups']} group(s): "
                f"{exact['redundant_copies']} redundant copies ({per_class}).",
                "delete the copies (audit.json lists every group), or random folds put copies in training and test",
            )
        )
    if near["within_class_pairs"]:
        out.append(
            _finding(
                INFO, "near-duplicates",
                f"{near['within_class_pairs']} pair(s) of near-identical images in the same class "
                f"(perceptual hash differs in at most {near['threshold']} of 64 bits).",
                "inspect the pairs listed in audit.json; delete re-saved or re-scaled copies",
            )
        )
    return out


def _leak_findings(leakage: dict) -> list[dict]:
    if not leakage.get("available") or not leakage["total_leaked"]:
        return []
    pooled = leakage["pooled_leaked_fraction"]
    severity = WARNING if pooled >= LEAK_WARNING else CAUTION
    return [
        _finding(
            severity, "leakage",
            f"{leakage['total_leaked']} of {leakage['total_test']} test images ({pooled:.1%}; per fold up to "
            f"{leakage['max_leaked_fraction']:.1%}) have an identical or near-identical copy in the training part of "
            "their fold: test scores are optimistic (the model has seen these images).",
            "delete the redundant copies (audit.json lists every group and pair) and run the audit again",
        )
    ]


def _inventory_findings(inventory: dict) -> list[dict]:
    out = []
    bad = inventory["unreadable"]
    if bad:
        listed = "; ".join(f"{safe_name(b['file'])} ({safe_name(b['reason'])})" for b in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        out.append(
            _finding(WARNING, "unreadable", f"{len(bad)} file(s) cannot be read as images: {listed}{more}.",
                     "delete or fix them; the benchmark skips them (data.on_bad_file: skip)")
        )
    ratio = inventory["imbalance_ratio"]
    if ratio is not None and ratio >= IMBALANCE_NOTE:
        out.append(
            _finding(INFO, "imbalance", f"The classes are imbalanced (largest/smallest = {ratio:.1f}).",
                     "compare methods by balanced accuracy or macro-F1, not accuracy")
        )
    return out


def findings(result: dict) -> list[dict]:
    """All findings of an audit result, most severe first."""
    found = (
        _inventory_findings(result["inventory"])
        + _duplicate_findings(result["duplicates"])
        + _leak_findings(result["leakage"])
        + _shortcut_findings(result["shortcuts"], result["settings"]["image_size"])
    )
    return sorted(found, key=lambda f: ORDER[f["severity"]])
