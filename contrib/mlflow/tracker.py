"""``MlflowTracker``: a tether run mirrored as an MLflow run.

The MLflow run is named after the tether run id and tagged ``tether.run_id``; the code
version goes to MLflow's own source tags (``mlflow.source.git.commit``, ``.branch``).
Params are sent once each; metric values are buffered and sent with ``log_batch`` at
each ``flush`` (tether flushes every 1,000 values, at least every second, and at the
end), steps kept (a value without a step is step 0 in MLflow). Artifacts are copied from
the workspace storage (read verified against their digest) under ``tether/<name>``,
with their digest as tag ``tether.artifact.<name>``.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import attrs
from tether.backends import Tracker

from .names import (
    PARAM_VALUE_MAX,
    TAG_VALUE_MAX,
    client_for,
    cut,
    default_artifact_location,
    mlflow_key,
    resolve_uri,
)

#: tether run status -> MLflow run status
STATUSES = {"succeeded": "FINISHED", "failed": "FAILED"}
_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def _millis(stamp: dt.datetime | None) -> int:
    stamp = stamp or dt.datetime.now(dt.timezone.utc)
    return int(stamp.timestamp() * 1000)


def experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created if missing (a concurrent creator is fine)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        found = client.get_experiment_by_name(name)  # created by someone else meanwhile
        if found is None:
            raise
        return found.experiment_id


@attrs.define(kw_only=True)
class MlflowTracker(Tracker):
    """Mirrors runs (params, metrics with steps, artifacts, tags, status) into MLflow, and
    registered model versions with their status and aliases into its model registry."""

    name: ClassVar[str] = "mlflow"
    requires: ClassVar[tuple[str, ...]] = ("mlflow", "sqlalchemy", "alembic")
    extra: ClassVar[str | None] = "mlflow"

    #: where MLflow keeps runs (``sqlite:///mlflow.db``, ``http://host:5000``, ...);
    #: empty: ``$MLFLOW_TRACKING_URI``
    tracking_uri: str = attrs.field(default="", repr=False)  # may hold a password
    #: the MLflow experiment; empty: the tether run's name (the chain name)
    experiment: str = ""
    #: copy artifacts (models, reports) into MLflow's artifact store
    artifacts: bool = True

    _client: Any = attrs.field(default=None, init=False, repr=False)
    _context: Any = attrs.field(default=None, init=False, repr=False)
    _runs: dict[str, str] = attrs.field(factory=dict, init=False, repr=False)
    _params: dict[str, dict[str, str]] = attrs.field(factory=dict, init=False, repr=False)
    _metrics: list = attrs.field(factory=list, init=False, repr=False)

    @tracking_uri.validator
    def _check_uri(self, _attribute, value: str) -> None:
        if not (value or os.environ.get("MLFLOW_TRACKING_URI")):  # checked before any run starts
            raise ValueError("tracking_uri is required (e.g. sqlite:///mlflow.db), or set MLFLOW_TRACKING_URI")

    @property
    def uri(self) -> str:
        return resolve_uri(self.tracking_uri)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client_for(self.uri)
        return self._client

    def mlflow_run_id(self, run_id: str) -> str | None:
        """The MLflow run mirroring tether run ``run_id`` (while this tracker follows it)."""
        return self._runs.get(run_id)

    def start_run(self, run, *, context) -> None:
        self._context = context
        exp = experiment_id(self.client, self.experiment or run.chain, default_artifact_location(self.uri))
        tags = {"tether.run_id": run.id, "tether.chain": run.chain}
        code = run.code or {}
        for ours, theirs in (("git_commit", "mlflow.source.git.commit"), ("git_branch", "mlflow.source.git.branch")):
            if code.get(ours):
                tags[theirs] = str(code[ours])
        if "git_dirty" in code:
            tags["tether.git_dirty"] = str(code["git_dirty"]).lower()
        tags.update({mlflow_key(k): cut(v, TAG_VALUE_MAX) for k, v in (run.tags or {}).items()})
        created = self.client.create_run(exp, start_time=_millis(run.started_at), tags=tags, run_name=run.id)
        self._runs[run.id] = created.info.run_id
        self._params[run.id] = {}
        if run.params:
            self.log_params(run.id, run.params)

    def log_params(self, run_id, params) -> None:
        from mlflow.entities import Param

        sent = self._params.setdefault(run_id, {})
        new = {}
        for key, value in params.items():
            name, text = mlflow_key(key), cut(value, PARAM_VALUE_MAX)
            if sent.get(name) != text:  # MLflow params are write-once: send each once
                new[name] = text
        for start in range(0, len(new), 100):
            chunk = list(new.items())[start:start + 100]
            self.client.log_batch(self._runs[run_id], params=[Param(k, v) for k, v in chunk])
        sent.update(new)

    def log_metrics(self, run_id, metrics, *, step=None, timestamp=None) -> None:
        stamp = _millis(timestamp)
        self._metrics.extend((run_id, key, value, stamp, step or 0) for key, value in metrics.items())

    def flush(self, run_id) -> None:
        from mlflow.entities import Metric

        rows = [row for row in self._metrics if row[0] == run_id]
        if not rows:
            return
        self._metrics = [row for row in self._metrics if row[0] != run_id]
        metrics = [Metric(mlflow_key(key), float(value), stamp, step) for _, key, value, stamp, step in rows]
        for start in range(0, len(metrics), _BATCH):
            self.client.log_batch(self._runs[run_id], metrics=metrics[start:start + _BATCH])

    def set_tags(self, run_id, tags) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(mlflow_key(k), cut(v, TAG_VALUE_MAX)) for k, v in tags.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self._runs[run_id], tags=items[start:start + 100])

    def log_artifact(self, run_id, ref, *, name) -> None:
        if not self.artifacts:
            return
        data = self._context.storage.read_bytes(ref)  # verified against ref.digest
        suffix = "".join(Path(ref.key).suffixes[-1:])
        with tempfile.TemporaryDirectory(prefix="tether-mlflow-") as folder:
            path = Path(folder) / f"{mlflow_key(name).replace('/', '_')}{suffix}"
            path.write_bytes(data)
            self.client.log_artifact(self._runs[run_id], str(path), artifact_path="tether")
        self.client.set_tag(self._runs[run_id], f"tether.artifact.{mlflow_key(name)}", ref.digest)

    def end_run(self, run, *, status) -> None:
        self.flush(run.id)
        mlflow_id = self._runs.pop(run.id)
        self._params.pop(run.id, None)
        self.client.set_terminated(mlflow_id, status=STATUSES.get(status, "KILLED"), end_time=_millis(run.ended_at))

    def log_model_version(self, model_version, *, status, aliases) -> None:
        from .sync import sync_version

        sync_version(self.client, model_version, status=status, aliases=tuple(aliases),
                     mlflow_run_id=self._runs.get(model_version.run_id or ""))
