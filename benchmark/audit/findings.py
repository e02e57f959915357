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
GROUP_HINT = ("set protocol.group_by: duplicates (folder mode: --group-by duplicates): each group of byte-identical "
              "files then stays in one part of every fold")
FLOOR_HINT = "compare methods against this floor (the report shows it), not against chance"
# What a finding asks the experiment to switch on (None: nothing the tool can switch on); `init` applies these.
RESIZE_VIA, GROUP_DUPLICATES = "resize_via", "group_by_duplicates"
SHORTCUT_EFFECT = "a model can score this from how the images were made, not from what they show."


def _finding(severity: str, topic: str, message: str, mitigation: str | None = None, action: str | None = None) -> dict:
    return {"severity": severity, "topic": topic, "message": message, "mitigation": mitigation, "action": action}


FIXED_HINT = ("the parts are the folder's own train/ validation/ test/ (protocol.group_by applies to k-fold only): "
              "delete the copies from all but one part (audit.json lists them)")


def _grouped(settings: dict) -> bool:
    return settings.get("group_by") == "duplicates"


def majority_phrase(task: dict) -> str:
    """The majority baseline as measured: each fold's training part's most common class, scored on its test part."""
    k = len(task["classes"])
    return (f"always guessing the most common class of each fold's training part: {task['majority']['accuracy']:.1%} "
            f"accuracy (chance with {k} classes: {1 / k:.1%} balanced accuracy)")


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


def _resize_advice(settings: dict) -> tuple[str, str | None]:
    """The resize advice, or (when the crops already go through a small size) what is left to do."""
    if settings.get("resize_policy") == "via":
        return (f"every crop already goes through {settings.get('via')} px and the cue remains: try a smaller "
                f"data.resize.via, and {FLOOR_HINT}"), None
    return RESIZE_HINT, RESIZE_VIA


def _consequence(key: str, kind: str, settings: dict) -> tuple[str, str | None, str | None]:
    """What a shortcut of this feature set means for a model, what to do, and what to switch on."""
    if key == "input":  # reported only when sharpness alone is not (as) telling: colour or contrast carry the cue
        return (SHORTCUT_EFFECT, "the input's colour or contrast differs between the classes (sharpness alone tells "
                f"them apart less well): check the lighting and camera per class, and {FLOOR_HINT}", None)
    if kind == "input":
        return (SHORTCUT_EFFECT, *_resize_advice(settings))
    if key == "format":
        return (
            "the classes were stored differently, so they were probably collected differently.",
            "a model never sees the file format; check the model-input rows to see whether the difference reaches the pixels",
            None,
        )
    if key == "colour":
        return (
            "brightness or colour differs between the classes.",
            f"check the lighting and camera per class; the benchmark has no colour augmentation, so {FLOOR_HINT}",
            None,
        )
    return (
        "if the size difference reaches the model's input (up-scaling blurs small crops), " + SHORTCUT_EFFECT,
        *_resize_advice(settings),
    )


def _set_finding(task: dict, row: dict, settings: dict) -> dict | None:
    """The strongest statement about one feature set: overall shortcut, else one class singled out."""
    phrase = f"From {PHRASES[row['key']].format(size=settings['image_size'])} alone, a trivial classifier"
    merged = None if task["key"] == "task" else task["key"].split(":", 1)[1]
    what = "the label" if merged is None else f"which of its folders a {merged!r} image came from"
    others = "the other classes" if merged is None else f"the other folders merged into {merged!r}"
    consequence, mitigation, action = _consequence(row["key"], row["kind"], settings)
    severity = _severity(row["balanced_accuracy"], task["chance_balanced_accuracy"])
    singled_out = {k: v for k, v in row.get("per_class_f1", {}).items() if v is not None and v >= WARN_BALANCED}
    if severity != WARNING and singled_out:
        singled = ", ".join(f"{name!r} (F1 {value:.1%})" for name, value in singled_out.items())
        message = f"{phrase} tells {singled} apart from {others}: {consequence}"
        return _finding(WARNING, f"shortcut:{task['key']}:{row['key']}", message, mitigation, action)
    if severity is None:
        return None
    message = (
        f"{phrase} predicts {what} with {row['accuracy']:.1%} accuracy (balanced {row['balanced_accuracy']:.1%}; "
        f"{majority_phrase(task)}): {consequence}"
    )
    return _finding(severity, f"shortcut:{task['key']}:{row['key']}", message, mitigation, action)


def _shortcut_findings(shortcuts: dict, settings: dict) -> list[dict]:
    combines = {s.key: s.combines for s in FEATURE_SETS}
    out = []
    for task in shortcuts["tasks"]:
        found = {row["key"]: _set_finding(task, row, settings) for row in task["sets"]}
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


def _duplicate_findings(duplicates: dict, settings: dict) -> list[dict]:
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
        message = (f"{exact['files']} files are byte-identical copies in {exact['groups']} group(s): "
                   f"{exact['redundant_copies']} redundant copies ({per_class}).")
        if settings.get("fixed_split"):
            out.append(_finding(CAUTION, "exact-duplicates", message, FIXED_HINT))
        elif _grouped(settings):
            out.append(_finding(INFO, "exact-duplicates", message + " protocol.group_by: duplicates keeps each group "
                                "in one part of every fold."))
        else:
            out.append(_finding(CAUTION, "exact-duplicates", message, GROUP_HINT + "; or delete the copies (audit.json "
                                "lists every group)", GROUP_DUPLICATES))
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


def _leak_findings(leakage: dict, settings: dict) -> list[dict]:
    if not leakage.get("available") or not leakage["total_leaked"]:
        return []
    if settings.get("fixed_split"):
        advice, action = FIXED_HINT, None
    elif _grouped(settings):
        advice, action = ("byte-identical copies are already kept together (protocol.group_by: duplicates); what leaks "
                          "are near-identical copies: delete them (audit.json lists every pair)"), None
    else:
        advice, action = GROUP_HINT + "; near-identical copies need deleting (audit.json lists them)", GROUP_DUPLICATES
    pooled = leakage["pooled_leaked_fraction"]
    severity = WARNING if pooled >= LEAK_WARNING else CAUTION
    return [
        _finding(
            severity, "leakage",
            f"{leakage['total_leaked']} of {leakage['total_test']} test images ({pooled:.1%}; per fold up to "
            f"{leakage['max_leaked_fraction']:.1%}) have an identical or near-identical copy in the training part of "
            "their fold: test scores are optimistic (the model has seen these images).",
            advice, action,
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
    settings = result["settings"]
    found = (
        _inventory_findings(result["inventory"])
        + _duplicate_findings(result["duplicates"], settings)
        + _leak_findings(result["leakage"], settings)
        + _shortcut_findings(result["shortcuts"], settings)
    )
    return sorted(found, key=lambda f: ORDER[f["severity"]])
