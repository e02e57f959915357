"""TensorBoard: per-run scalars (every epoch's metrics, then the final ones) under <output>/tensorboard/<run_id>."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.trackers.params import epoch_series, final_metrics, run_params

FOLDER = "tensorboard"


class TensorboardTracker:
    name = "tensorboard"

    def __init__(self, output: Path):
        self.root = output / FOLDER

    def logged(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {d.name for d in self.root.iterdir() if d.is_dir() and any(d.glob("events.out.tfevents.*"))}

    def log_run(self, record: dict, history: pd.DataFrame | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(self.root / record["run_id"]))
        try:
            for key, step, value in epoch_series(history):
                writer.add_scalar(f"epoch/{key}", value, step)
            final_step = int(record.get("selected_epoch") or 0)
            for key, value in final_metrics(record).items():
                writer.add_scalar(f"final/{key}", value, final_step)
            text = "\n".join(f"    {k}: {v}" for k, v in run_params(record).items())
            writer.add_text("run", f"{record.get('method_label')} {record.get('backbone')} fold {record.get('fold')} "
                                   f"({record.get('status')})\n\n{text}")
        finally:
            writer.close()

    def close(self) -> None:
        pass
