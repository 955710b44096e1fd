"""MLflow through its own client (`MlflowClient`): one experiment per project, one run per
training run, a sweep as a parent run whose children are its points.

The explicit client rather than the fluent `mlflow.start_run` API: a sweep trains its points in
threads at once, and the fluent API keeps one active run per thread. Calls are serialized per
tracking URI (SQLite allows one writer at a time). The local default is a SQLite store
(MLflow 3 refuses its old file store unless `MLFLOW_ALLOW_FILE_STORE` is set); its artifacts
(tables) go next to the database, not into the current directory.
"""

from __future__ import annotations

import os
import posixpath
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.tracking.contract import Cell, EndStatus, RunLink
from tinker_chief.tracking.target import TrackingTarget

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# MLflow's HTTP client retries a gone server for minutes by default; chief gives up sooner so a
# dead tracker costs a training run seconds (a user's own setting of these wins).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

_LOCKS: dict[str, threading.Lock] = {}
_STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "stopped": "KILLED", "failed": "FAILED"}
PARENT_TAG = "mlflow.parentRunId"  # what MLflow's UI nests child runs by
PARAMS_PER_BATCH = 100  # MLflow's limit on params in one log_batch
# MLflow 3's UI opens an experiment in its GenAI view unless this tag says it trains models.
EXPERIMENT_KIND = "mlflow.experimentKind"


def _key(name: str) -> str:
    """`name` as MLflow takes a param, metric or tag key: letters, digits, `_-. /:`, and no path
    that normalizes to another (a data file or task named by the user may hold anything else)."""
    key = re.sub(r"[^\w\-. /:]", "_", name, flags=re.ASCII)
    key = posixpath.normpath(key).lstrip("/").replace("..", "__")
    return key if key not in ("", ".") else "_"


def _artifact_location(uri: str) -> str | None:
    """Tables of a SQLite store go beside the database (MLflow's default is ./mlartifacts)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None


class MlflowTracker:
    name = "mlflow"

    def __init__(self, target: TrackingTarget) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = target.mlflow_uri
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.lock = _LOCKS.setdefault(self.uri, threading.Lock())
        with self.lock:
            self.client: MlflowClient = MlflowClient(tracking_uri=self.uri)
            experiment = self.client.get_experiment_by_name(target.experiment)
            self.experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self.client.create_experiment(
                    target.experiment,
                    artifact_location=_artifact_location(self.uri),
                    tags={EXPERIMENT_KIND: "custom_model_development"},
                )
            )

    def _url(self, run_id: str) -> str | None:
        if self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"
        return None

    def _open(
        self, name: str, params: dict[str, str], tags: dict[str, str], resume: RunLink | None
    ) -> MlflowRun:
        with self.lock:
            if resume is not None:
                self.client.update_run(resume.run_id, status="RUNNING")
                run_id = resume.run_id
            else:
                created = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
                run_id = created.info.run_id
        link = RunLink(
            "mlflow",
            run_id,
            name,
            url=self._url(run_id),
            where=self.uri,
            project=self.experiment_id,
            group=tags.get(PARENT_TAG),
        )
        run = MlflowRun(self, link)
        if resume is None:
            run.log_params(params)
        return run

    def start_run(
        self,
        name: str,
        params: dict[str, str],
        *,
        group: RunLink | None = None,
        resume: RunLink | None = None,
    ) -> MlflowRun:
        return self._open(name, params, {PARENT_TAG: group.run_id} if group else {}, resume)

    def start_group(
        self, name: str, params: dict[str, str], *, resume: RunLink | None = None
    ) -> RunLink:
        return self._open(name, params, {"chief.kind": "sweep"}, resume).link

    def attach(self, link: RunLink) -> MlflowRun:
        # MLflow takes metrics, tags and artifacts on a finished run: no need to reopen it.
        return MlflowRun(self, link, keep_status=True)

    def group_run(self, group: RunLink) -> MlflowRun:
        return MlflowRun(self, group)


class MlflowRun:
    def __init__(self, tracker: MlflowTracker, link: RunLink, keep_status: bool = False) -> None:
        self.tracker, self.link, self.keep_status = tracker, link, keep_status

    @property
    def client(self) -> MlflowClient:
        return self.tracker.client

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(_key(key), value) for key, value in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            with self.tracker.lock:
                batch = items[start : start + PARAMS_PER_BATCH]
                self.client.log_batch(self.link.run_id, params=batch)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(_key(key), float(value), now, step) for key, value in metrics.items()]
        with self.tracker.lock:
            self.client.log_batch(self.link.run_id, metrics=batch)

    def log_table(
        self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], step: int
    ) -> None:
        data = {column: [row[i] for row in rows] for i, column in enumerate(columns)}
        with self.tracker.lock:
            self.client.log_table(self.link.run_id, data=data, artifact_file=f"{key}.json")

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(_key(key), value) for key, value in tags.items()]
        with self.tracker.lock:
            self.client.log_batch(self.link.run_id, tags=batch)

    def finish(self, status: EndStatus) -> None:
        if not self.keep_status:
            with self.tracker.lock:
                self.client.set_terminated(self.link.run_id, status=_STATUS[status])
