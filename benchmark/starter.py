"""`init`: draft a commented experiment file from an image folder: scan it, audit it, choose the keys that fit it.

Every choice is written beside its key with the reason (folds that fit the smallest class, the selection metric for
the number of classes, an input size the backbone accepts, the audit's mitigations where it found a cue).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.audit.findings import GROUP_DUPLICATES, RESIZE_VIA
from benchmark.data.folders import SPLIT_NAMES, FileList, scan
from benchmark.errors import UserError
from benchmark.protocol import DUPLICATES, ProtocolSpec, make_folds

BACKBONE = "resnet18"  # the paper's ResNet
MAX_SIZE = 128  # the largest input init proposes: keeps a first CPU sweep short
MAX_FOLDS = 5
VAL_FRACTION = 0.15
SIZE_RATIO = 1.25  # class median sides this far apart: the crops' size (and up-scaling blur) can be a cue
AUDIT_TREES = 50  # the quick audit: half the shortcut check's usual forest
METHODS = ("ce", "{name: alpha_js, alpha: 0.5}", "{name: label_smoothing, epsilon: 0.1}")


@dataclass
class Draft:
    """The choices `init` makes, each with the reason it is written beside its key."""

    name: str
    root: Path
    layout: str
    files: FileList
    counts: list[int]
    positive: str | None
    select_by: str
    image_size: int
    folds: int
    sizes: dict[str, tuple[int, int]]  # class -> median (width, height)
    formats: dict[str, str]
    via: int | None = None
    group_by: str | None = None
    findings: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def experiment_name(folder: Path) -> str:
    """A name for runs/<name> and reports/<name> from the folder's name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.resolve().name).strip("-.") or "experiment"


def _layout(root: Path) -> str:
    names = {p.name for p in root.iterdir() if p.is_dir()}
    split = all(any(n in names for n in options) for options in SPLIT_NAMES.values())
    return "split" if split else "folders"


def _headers(files: FileList) -> tuple[dict[str, tuple[int, int]], dict[str, str], list[int]]:
    """Median (width, height) and formats per class, and every readable file's shorter side (headers only)."""
    sizes: dict[str, list[tuple[int, int]]] = {c: [] for c in files.class_names}
    formats: dict[str, dict[str, int]] = {c: {} for c in files.class_names}
    sides = []
    for path, label in zip(files.files, files.labels, strict=True):
        name = files.class_names[label]
        try:
            with Image.open(path) as img:
                size, fmt = img.size, img.format or "?"
        except Exception:  # noqa: BLE001 - an unreadable file is the audit's to report
            continue
        sizes[name].append(size)
        formats[name][fmt] = formats[name].get(fmt, 0) + 1
        sides.append(min(size))
    medians = {c: tuple(int(v) for v in np.median(np.array(s), axis=0)) if s else (0, 0) for c, s in sizes.items()}
    shown = {c: ", ".join(f"{k} {v}" for k, v in sorted(f.items(), key=lambda kv: -kv[1])) for c, f in formats.items()}
    return medians, shown, sides


def _round8(value: float) -> int:
    return int(8 * round(value / 8))


def fitting_folds(files: FileList, group_by: str | None) -> int | None:
    """The most folds (at most MAX_FOLDS) for which every fold's training, validation and test part holds every class;
    None when not even 2 do."""
    for k in range(MAX_FOLDS, 1, -1):
        try:
            make_folds(files, ProtocolSpec(folds=k, val_fraction=VAL_FRACTION, group_by=group_by))
        except UserError:
            continue
        return k
    return None


def _too_few(files: FileList) -> UserError:
    counts = ", ".join(f"{n} {c}" for n, c in zip(files.class_names, np.bincount(files.labels), strict=True))
    return UserError(f"{files.root}: too few images per class for 2-fold cross-validation with a validation part "
                     f"({counts}); each class needs at least about 8 images")


def smallest_input(backbone: str) -> int:
    """The smallest input side (a multiple of 8) the backbone accepts at which its CAM layer is at least 2×2."""
    import methods
    from benchmark.design import cam_map_side

    minimum = (methods.backbone_info(backbone)["min_image_size"] or 8) if not backbone.startswith("timm:") else 32
    for size in range(max(8, -(-minimum // 8) * 8), MAX_SIZE + 1, 8):
        side = cam_map_side(backbone, size)
        if side is None or side >= 2:
            return size
    return MAX_SIZE


def draft(root: Path, backbone: str = BACKBONE, name: str | None = None) -> Draft:
    """Scan and audit `root`; the choices for its experiment file (named `name`, default: after the folder)."""
    from benchmark.audit import run_audit

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"init: {root} is not a folder; give a folder with one sub-folder of images per class")
    layout = _layout(root)
    files = scan(root, layout, None, where=str(root))
    counts = np.bincount(files.labels, minlength=len(files.class_names)).tolist()
    sizes, formats, sides = _headers(files)
    binary = len(files.class_names) == 2
    positive = None
    if binary:  # the rarer class (the second one on a tie, as data.positive's default)
        positive = files.class_names[0] if counts[0] < counts[1] else files.class_names[1]
    lowest = smallest_input(backbone)
    image_size = min(MAX_SIZE, max(lowest, _round8(float(np.median(sides))) if sides else lowest))
    folds = fitting_folds(files, None) if layout == "folders" else 1
    if folds is None:
        raise _too_few(files)
    made = make_folds(files, ProtocolSpec(folds=folds, val_fraction=VAL_FRACTION)) if layout == "folders" else \
        make_folds(files, ProtocolSpec(kind="fixed"))
    result = run_audit(files, made, image_size, "stretch", None, positive, fixed_split=layout == "split",
                       trees=AUDIT_TREES)
    out = Draft(name or experiment_name(root), root, layout, files, counts, positive,
                "val_f1" if binary else "val_macro_f1", image_size, folds, sizes, formats,
                findings=result["findings"])
    _mitigate(out, result)
    return out


def _mitigate(out: Draft, result: dict) -> None:
    """The audit's cues, turned into keys: a crop-size cue → resize via the smallest class's size; copies → grouped."""
    sides = [min(size) for size in out.sizes.values() if min(size) > 0]
    differ = bool(sides) and max(sides) >= SIZE_RATIO * min(sides)  # a cue resizing through one size can remove
    via = max(4, min(sides) // 4 * 4) if sides else out.image_size
    if differ and via < out.image_size and any(f.get("action") == RESIZE_VIA for f in out.findings):
        out.via = via
        out.notes.append(f"the audit found a size cue: every crop goes through {out.via} px first (the smallest class's "
                         "median side, rounded down to a multiple of 4), which removes the up-scaling blur cue; "
                         "`python -m benchmark audit` on this file shows what remains")
    duplicates = result["duplicates"]["exact"]["groups"]
    if duplicates and out.layout == "folders":
        grouped = fitting_folds(out.files, DUPLICATES)
        if grouped is None:
            out.notes.append(f"{duplicates} group(s) of byte-identical files, but keeping each group in one part "
                             "(protocol.group_by: duplicates) leaves some validation part without a class at any fold "
                             "count: delete the copies instead (audit.json of `audit` lists them)")
            return
        out.group_by, out.folds = DUPLICATES, grouped
        out.notes.append(f"{duplicates} group(s) of byte-identical files: each group stays in one part of every fold")


def _comment_lines(text: str, width: int = 116) -> list[str]:
    """`text` as '# ' lines of at most `width` characters."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width - 2:
            lines.append("# " + line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + (["# " + line] if line else [])


def render(d: Draft, cost: str, warnings: list[str], backbone: str = BACKBONE) -> str:
    """The experiment file: header comments (what was found), the keys with their reasons, the cost at the end."""
    names = d.files.class_names
    classes = ", ".join(f"{n} {c} ({d.sizes[n][0]}×{d.sizes[n][1]} px median; {d.formats[n]})"
                        for n, c in zip(names, d.counts, strict=True))
    head = [f"# Drafted by `python -m benchmark init {d.root}`: every key below is a choice; change any of them.",
            *_comment_lines(f"Found {len(d.files.files)} images in {len(names)} classes ({d.layout} layout): {classes}."),
            "#", "# The quick audit (python -m benchmark audit THIS_FILE for the full one):"]
    applied = {RESIZE_VIA: d.via is not None, GROUP_DUPLICATES: d.group_by is not None}
    for f in d.findings or [{"severity": "info", "message": "no problems found.", "mitigation": None}]:
        head += _comment_lines(f"{f['severity'].upper()}: {f['message']}")
        if f["mitigation"] and not applied.get(f.get("action"), False):
            head += _comment_lines(f"  what to do: {f['mitigation']}.")
    for note in d.notes:
        head += _comment_lines(f"Mitigation: {note}.")
    smallest = names[int(np.argmin(d.counts))]
    binary = d.positive is not None
    positive = (f"  positive: {d.positive}                # F1 is that of the rarer class ({d.positive})"
                if binary else "  positive: null                # more than two classes: macro-F1 (every class weighs the same)")
    resize = (f"  resize: {{policy: via, via: {d.via}}}   # the audit's size cue: every crop through {d.via} px first"
              if d.via else "  resize: {policy: stretch}      # no size cue found; letterbox keeps the aspect ratio")
    protocol = (["  kind: kfold", f"  folds: {d.folds}                      # the most (≤ {MAX_FOLDS}) that give every "
                 f"part of every fold each class (smallest: {smallest}, {min(d.counts)})",
                 "  repeats: 1", "  stratify: true"] if d.layout == "folders" else
                ["  kind: fixed                    # the folder's own train/ validation/ test/ parts"])
    if d.group_by:
        protocol.append(f"  group_by: {d.group_by}          # byte-identical copies stay in one part of each fold")
    metric = "F1 of the positive class" if binary else "macro-F1"
    body = [
        f"name: {d.name}",
        "plugins: []                       # modules or .py files with your own methods (docs/methods.md)",
        "data:",
        f"  root: {d.root.resolve()}",
        f"  layout: {d.layout}",
        positive,
        f"  image_size: {d.image_size}  # {_size_reason(backbone)}",
        resize,
        "  augment: []                    # hflip, vflip, rot90: only those that keep an image's class",
        "protocol:",
        *protocol,
        f"  val_fraction: {VAL_FRACTION}",
        f"  select_by: {d.select_by}           # the epoch kept is the best on the inner validation by {metric}",
        "  seed: 42",
        "train:",
        "  epochs: 20                     # the report warns when many runs keep their last epoch: then raise this",
        "  batch_size: 64",
        "  optimizer: {name: adam, lr: 1.0e-3, weight_decay: 1.0e-4}",
        "  scheduler: {name: cosine}",
        "  threads: 1                     # one thread per run, one run per core (run.workers: auto)",
        "methods:                         # python -m benchmark list methods: every method and its parameters",
        *(f"  - {m}" for m in METHODS),
        f"backbones: [{backbone}]  # python -m benchmark list backbones (small_cnn: a CPU-sized CNN)",
        "seeds: [0]",
        "run:",
        "  workers: auto",
        "  device: auto",
        f"  output: runs/{d.name}",
    ]
    tail = ["", "# Next: python -m benchmark run THIS_FILE, then python -m benchmark report THIS_FILE.",
            "# Cost here (the dry-run's timing probe on this machine):"]
    tail += ["#   " + line for line in cost.splitlines()]
    for warning in warnings:
        tail += _comment_lines(f"design warning: {warning}")
    return "\n".join(head + ["", *_aligned(body), *tail]) + "\n"


def _aligned(lines: list[str]) -> list[str]:
    """Key lines with their '# reason' comments in one column."""
    parts = [re.split(r"\s+# ", line, maxsplit=1) for line in lines]
    column = max(len(p[0]) for p in parts if len(p) == 2) + 2
    return [f"{p[0]:<{column}}# {p[1]}" if len(p) == 2 else p[0] for p in parts]


def _size_reason(backbone: str) -> str:
    import methods

    minimum = methods.backbone_info(backbone)["min_image_size"] if not backbone.startswith("timm:") else None
    accepts = f"{backbone} accepts ≥ {minimum}" if minimum else f"{backbone}"
    return (f"{accepts}; the images' median side, at least {smallest_input(backbone)} (its activation maps stay 2×2 "
            f"or more) and at most {MAX_SIZE}")


def write_new(path: Path, text: str) -> None:
    """Create `path` with `text`; refuse (one line) when it exists: nothing the user owns is overwritten."""
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise UserError(f"init: {path} exists; choose another file with -o (nothing written)") from None


def price(text: str, estimate: bool) -> tuple[str, list[str]]:
    """The cost table and design warnings of the drafted file (loaded from a temporary copy, as `run` will load it)."""
    from benchmark.config import load_config
    from benchmark.design import plan_warnings
    from benchmark.estimate import pending_estimate
    from benchmark.runner import open_sweep

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "draft.yaml"
        path.write_text(text, encoding="utf-8")
        cfg = load_config(path)
        sweep = open_sweep(cfg, decode_images=False)
        warnings = plan_warnings(cfg, sweep.prepared.folds)
        if not estimate:
            return "(skipped: --no-estimate)", warnings
        return pending_estimate(cfg, sweep.runs)[0], warnings
