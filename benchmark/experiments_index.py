"""Past experiments on this machine: the output folders under a folder (runs/ by default) and those the experiment
files in experiments/ name, each with its runs (planned, done, failed), last finish and data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmark.config import RESOLVED, output_folder, resolved_config
from benchmark.store import Store


@dataclass(frozen=True)
class PastExperiment:
    name: str
    folder: Path
    planned: int
    done: int
    failed: int
    last: str  # the newest record's finished_at (UTC, to the minute), '-' without one
    data: str  # data.root, with the classes


def _config(folder: Path) -> dict:
    try:
        config = yaml.safe_load((folder / RESOLVED).read_text(errors="replace"))
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def describe(folder: Path) -> PastExperiment:
    """One output folder's name, counts of its current runs, last finish and data."""
    config = _config(folder)
    store = Store(folder)
    current, _ = store.current_records()
    planned = store.planned_ids()
    statuses = [r.get("status") for r in current]
    finished = sorted(str(r.get("finished_at") or "") for r in current)
    data = config.get("data") or {}
    classes = next((r.get("task_classes") for r in current if r.get("task_classes")), None)
    what = str(data.get("root", "?")) + (f" ({', '.join(map(str, classes))})" if classes else "")
    return PastExperiment(str(config.get("name") or folder.name), folder,
                          len(planned) if planned is not None else len(current), statuses.count("done"),
                          statuses.count("failed"), finished[-1][:16].replace("T", " ") if finished and finished[-1] else "-",
                          what)


def find(under: Path, experiments: Path | None = Path("experiments")) -> list[PastExperiment]:
    """Output folders directly under `under`, and those the experiment files in `experiments` name that exist."""
    folders = [p for p in sorted(under.glob("*")) if resolved_config(p)] if under.is_dir() else []
    for path in sorted(experiments.glob("*.y*ml")) if experiments is not None and experiments.is_dir() else []:
        try:
            raw = yaml.safe_load(path.read_text(errors="replace"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            run = raw.get("run") if isinstance(raw.get("run"), dict) else {}
            folder = Path(output_folder(raw["name"], run.get("output")))
            if resolved_config(folder) and folder.resolve() not in {f.resolve() for f in folders}:
                folders.append(folder)
    return [describe(folder) for folder in folders]


def table(found: list[PastExperiment]) -> str:
    """The experiments as aligned text lines, newest first."""
    rows = [("experiment", "output folder", "runs", "done", "failed", "last finished (UTC)", "data")]
    for e in sorted(found, key=lambda e: e.last, reverse=True):
        rows.append((e.name, str(e.folder), str(e.planned), str(e.done), str(e.failed), e.last, e.data))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows)
