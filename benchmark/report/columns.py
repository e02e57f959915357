"""Metric names, display labels, units and which direction is better."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

LABEL_DIGITS = 4  # significant digits of a float in a method label as shown (records keep every digit)
_FLOAT = re.compile(r"(?<![\w.])-?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])|(?<![\w.])-?\d+[eE][-+]?\d+(?![\w.])")


@dataclass(frozen=True)
class Metric:
    """How one metric (without its `test_`/`val_` prefix) is shown."""

    label: str
    higher_is_better: bool | None
    percent: bool
    unit: str = ""

    def axis_label(self, prefix: str = "Test") -> str:
        unit = "%" if self.percent else self.unit
        return f"{prefix} {self.label}" + (f" ({unit})" if unit else "")

    def scale(self) -> float:
        return 100.0 if self.percent else 1.0


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", True, True),
    "balanced_accuracy": Metric("balanced accuracy", True, True),
    "precision": Metric("precision", True, True),
    "recall": Metric("recall", True, True),
    "f1": Metric("F1", True, True),
    "macro_f1": Metric("macro F1", True, True),
    "auroc": Metric("AUROC", True, True),
    "nll": Metric("NLL", False, False, "nats"),
    "ece": Metric("ECE", False, True),
    "brier": Metric("Brier score", False, False),
    "entropy": Metric("entropy", None, False, "nats"),
    "loss": Metric("loss", False, False, "nats"),
}

GROUP_KEYS = ["backbone", "fold", "repeat", "seed"]
PAIR_KEYS = ["fold", "repeat", "seed"]
BLOCK_KEYS = ["fold", "repeat"]  # one paired block per split: its seeds are averaged (they share the split)


def split_name(column: str) -> tuple[str, str]:
    """`test_f1` -> ('test', 'f1')."""
    prefix, _, name = column.partition("_")
    return prefix, name


def info(column: str) -> Metric:
    """Display info of a `test_*`/`val_*` column."""
    return METRICS[split_name(column)[1]]


def normalize_metric(name: str, prefix: str) -> str:
    """Accept `f1` or `test_f1`; return the full column name, or raise ValueError naming the allowed ones."""
    bare = name[len(prefix) + 1:] if name.startswith(prefix + "_") else name
    if bare not in METRICS or (prefix == "test" and bare == "loss"):
        allowed = ", ".join(f"{prefix}_{m}" for m in METRICS if not (prefix == "test" and m == "loss"))
        raise ValueError(f"{name!r} is not a {prefix} metric; allowed: {allowed}")
    return f"{prefix}_{bare}"


def _rounded(text: str) -> str:
    """A float written to LABEL_DIGITS significant digits, still reading as a float (2.0 stays 2.0, not 2)."""
    out = f"{float(text):.{LABEL_DIGITS}g}"
    return out if any(c in out for c in ".enia") else out + ".0"


def short_label(label: str) -> str:
    """A method label with each float to LABEL_DIGITS significant digits: `w=2.0825030551671313` → `w=2.083`."""
    return _FLOAT.sub(lambda match: _rounded(match.group()), label)


def short_labels(labels: pd.Series) -> pd.Series:
    """`short_label` of each label, where that keeps distinct labels distinct (else the labels as they are)."""
    short = labels.map(short_label)
    pairs = pd.DataFrame({"full": labels, "short": short}).drop_duplicates()
    return short if pairs["short"].is_unique else labels
