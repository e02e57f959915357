"""MLflow: one MLflow run per benchmark run, nested under one parent run per sweep (found again on resume)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from benchmark.trackers.params import epoch_series, final_metrics, flatten, run_params, run_tags

SWEEP_TAG = "solderbench.sweep"
MAX_BATCH = 1000  # MLflow's log_batch limit on metrics per call


def default_uri(output: Path) -> str:
    """An SQLite store inside the output folder (what `mlflow ui --backend-store-uri` is pointed at)."""
    return f"sqlite:///{(output / 'mlflow.db').resolve()}"


class MlflowTracker:
    name = "mlflow"

    def __init__(self, output: Path, experiment: str, config: dict, tracking_uri: str | None):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri or default_uri(output))
        found = self.client.get_experiment_by_name(experiment)
        # artifacts (none are logged today) stay in the output folder too, not in ./mlruns of whatever cwd
        artifacts = None if tracking_uri else (output.resolve() / "mlflow-artifacts").as_uri()
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=artifacts)
        self.sweep_key = str(output.resolve())
        self.parent = self._parent(experiment, config)

    def _parent(self, experiment: str, config: dict) -> str:
        """The sweep's parent run: the existing one for this output folder, or a new one with the config as params."""
        existing = self.client.search_runs([self.experiment_id], f"tags.`{SWEEP_TAG}` = '{self.sweep_key}'",
                                           max_results=1)
        if existing:
            return existing[0].info.run_id
        run = self.client.create_run(self.experiment_id, run_name=experiment, tags={SWEEP_TAG: self.sweep_key})
        from mlflow.entities import Param

        params = [Param(k[:250], str(v)[:6000]) for k, v in flatten(config).items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[start:start + 100])
        return run.info.run_id

    def logged(self) -> set[str]:
        runs = self.client.search_runs([self.experiment_id], f"tags.`mlflow.parentRunId` = '{self.parent}'",
                                       max_results=50000)
        return {r.data.tags["solderbench.run_id"] for r in runs if "solderbench.run_id" in r.data.tags}

    def log_run(self, record: dict, history: pd.DataFrame | None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        label = f"{record.get('method_label')} · {record.get('backbone')} · fold {record.get('fold')}"
        tags = run_tags(record) | {"mlflow.parentRunId": self.parent}
        run = self.client.create_run(self.experiment_id, run_name=label, tags=tags)
        now = int(time.time() * 1000)
        metrics = [Metric(f"epoch/{key}", value, now, step) for key, step, value in epoch_series(history)]
        metrics += [Metric(key, value, now, 0) for key, value in final_metrics(record).items()]
        params = [Param(k[:250], v[:6000]) for k, v in run_params(record).items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[start:start + 100])
        for start in range(0, len(metrics), MAX_BATCH):
            self.client.log_batch(run.info.run_id, metrics=metrics[start:start + MAX_BATCH])
        if record.get("error"):
            self.client.log_batch(run.info.run_id, tags=[RunTag("solderbench.error", str(record["error"])[:5000])])
        self.client.set_terminated(run.info.run_id, "FINISHED" if record.get("status") == "done" else "FAILED")

    def close(self) -> None:
        self.client.set_terminated(self.parent, "FINISHED")
