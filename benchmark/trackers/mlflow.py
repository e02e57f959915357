"""MLflow: one MLflow run per benchmark run, nested under one parent run per sweep (found again on resume).

The sweep is known by a key kept in its output folder (`mlflow-sweep-key`), so a moved or copied output folder
continues its own parent run. A run counts as logged once it carries `solderbench.run_id`, which is set last: one
half-written by a killed or failing process is deleted and written again, never kept twice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from benchmark.trackers.params import epoch_series, final_metrics, flatten, run_params, run_tags

SWEEP_TAG = "solderbench.sweep"
KEY_FILE = "mlflow-sweep-key"
MAX_BATCH = 1000  # MLflow's log_batch limit on metrics per call
PROBE_TIMEOUT_S = 3.0


def sweep_key(output: Path) -> str:
    """The output folder's sweep key: made once (atomically, first process wins), then read."""
    path = output / KEY_FILE
    if not path.is_file():
        tmp = output / f".{KEY_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(uuid.uuid4().hex + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def default_uri(output: Path) -> str:
    """An SQLite store inside the output folder (what `mlflow ui --backend-store-uri` is pointed at)."""
    return f"sqlite:///{(output / 'mlflow.db').resolve()}"


def probe(uri: str) -> None:
    """Where MLflow would retry for minutes, fail within PROBE_TIMEOUT_S: a tracking server that does not answer
    (ConnectionError), an SQLite store that is a folder or in a missing folder (OSError)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname or "localhost", port), timeout=PROBE_TIMEOUT_S).close()
        except OSError as exc:
            raise ConnectionError(f"nothing answers at {uri} within {PROBE_TIMEOUT_S:g} s "
                                  f"({exc.strerror or type(exc).__name__})") from None
    elif parsed.scheme.startswith("sqlite") and uri.startswith(f"{parsed.scheme}:///"):
        path = Path(uri[len(parsed.scheme) + 4:])
        if path.is_dir():
            raise IsADirectoryError(f"the SQLite store {path} is a folder")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"the folder of the SQLite store {path} does not exist")


class MlflowTracker:
    name = "mlflow"

    def __init__(self, output: Path, experiment: str, config: dict, tracking_uri: str | None):
        probe(tracking_uri or default_uri(output))
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri or default_uri(output))
        found = self.client.get_experiment_by_name(experiment)
        # artifacts (none are logged today) stay in the output folder too, not in ./mlruns of whatever cwd
        artifacts = None if tracking_uri else (output.resolve() / "mlflow-artifacts").as_uri()
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=artifacts)
        self.sweep_key = sweep_key(output)
        self.parent = self._parent(experiment, config)

    def _parent(self, experiment: str, config: dict) -> str:
        """The sweep's parent run: the existing one for this output folder, or a new one with the config as params."""
        existing = self.client.search_runs([self.experiment_id], f"tags.`{SWEEP_TAG}` = '{self.sweep_key}'",
                                           max_results=1)
        if existing:
            return existing[0].info.run_id
        run = self.client.create_run(self.experiment_id, run_name=experiment, tags={SWEEP_TAG: self.sweep_key})
        self._log_params(run.info.run_id, flatten(config))
        return run.info.run_id

    def _log_params(self, mlflow_run: str, params: dict) -> None:
        """Parameters as text within MLflow's limits (key 250, value 6000 characters, 100 per batch)."""
        from mlflow.entities import Param

        items = [Param(str(k)[:250], str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(mlflow_run, params=items[start:start + 100])

    def logged(self) -> set[str]:
        """Run ids fully logged for this sweep; half-written runs (no run id tag yet) are deleted."""
        runs = self.client.search_runs([self.experiment_id], f"tags.`{SWEEP_TAG}.child` = '{self.sweep_key}'",
                                       max_results=50000)
        held = set()
        for run in runs:
            if "solderbench.run_id" in run.data.tags and run.info.status in ("FINISHED", "FAILED"):
                held.add(run.data.tags["solderbench.run_id"])
            else:
                self.client.delete_run(run.info.run_id)
        return held

    def log_run(self, record: dict, history: pd.DataFrame | None) -> None:
        label = f"{record.get('method_label')} · {record.get('backbone')} · fold {record.get('fold')}"
        tags = run_tags(record)
        run_id_tag = tags.pop("solderbench.run_id")
        tags |= {"mlflow.parentRunId": self.parent, f"{SWEEP_TAG}.child": self.sweep_key}
        run = self.client.create_run(self.experiment_id, run_name=label, tags=tags)
        try:
            self._fill(run.info.run_id, record, history, run_id_tag)
        except Exception:
            with contextlib.suppress(Exception):  # the half-written run goes; the next sync writes it whole
                self.client.delete_run(run.info.run_id)
            raise

    def _fill(self, mlflow_run: str, record: dict, history: pd.DataFrame | None, run_id_tag: str) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(f"epoch/{key}", value, now, step) for key, step, value in epoch_series(history)]
        metrics += [Metric(key, value, now, 0) for key, value in final_metrics(record).items()]
        self._log_params(mlflow_run, run_params(record))
        for start in range(0, len(metrics), MAX_BATCH):
            self.client.log_batch(mlflow_run, metrics=metrics[start:start + MAX_BATCH])
        last = [RunTag("solderbench.run_id", run_id_tag)]
        if record.get("error"):
            last.insert(0, RunTag("solderbench.error", str(record["error"])[:5000]))
        self.client.set_terminated(mlflow_run, "FINISHED" if record.get("status") == "done" else "FAILED")
        self.client.log_batch(mlflow_run, tags=last)  # the commit point: now it counts as logged

    def close(self) -> None:
        self.client.set_terminated(self.parent, "FINISHED")
