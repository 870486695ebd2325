"""Registry sync: tether's model versions, statuses and aliases copied into MLflow's
model registry; and past runs mirrored after the fact.

tether is the source of truth. Each tether version becomes one MLflow model version of
the same registered model name, created in tether's version order and found again by its
tag ``tether.model_version_id``, so syncing twice changes nothing. Its source is
``tether://<model version id>``; it links to the mirrored MLflow run when there is one
(tag ``tether.run_id``). The status is the tag ``tether.status`` (MLflow's own stages are
deprecated); aliases are MLflow aliases, moved when tether moves them and deleted when
tether removed them (only aliases pointing at versions tether synced are touched).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from tether.errors import NotFoundError, StoreError

from .names import TAG_VALUE_MAX, cut, one_line

ID_TAG = "tether.model_version_id"


def _ensure_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, tags={"tether.managed": "true"})
        except MlflowException:
            client.get_registered_model(name)  # created concurrently: fine if it exists now


def synced_versions(client: Any, name: str) -> dict[str, Any]:
    """tether model version id -> the MLflow model version carrying it."""
    found = client.search_model_versions(f"name = '{name}'", max_results=10_000)
    return {v.tags[ID_TAG]: v for v in found if ID_TAG in (v.tags or {})}


def _tags(mv: Any, status: str) -> dict[str, str]:
    tags = {ID_TAG: mv.id, "tether.version": str(mv.version), "tether.status": status,
            "tether.model_id": mv.model_id}
    for field in ("evaluation_id", "snapshot_id", "run_id", "artifact_digest", "owner", "license"):
        value = getattr(mv, field, None)
        if value:
            tags[f"tether.{field}"] = cut(value, TAG_VALUE_MAX)
    return tags


def sync_version(client: Any, mv: Any, *, status: str, aliases: tuple[str, ...] = (),
                 mlflow_run_id: str | None = None, existing: Any = None) -> tuple[str, int]:
    """Create or update the MLflow version of ``mv``; ``(action, MLflow version number)``,
    the action being ``created``, ``updated`` or ``unchanged``.

    ``aliases`` are the ones tether gives this version now: each is set on it, and an
    MLflow alias still pointing at it but no longer in tether's list is deleted.
    """
    _ensure_model(client, mv.name)
    if existing is None:
        existing = synced_versions(client, mv.name).get(mv.id)
    tags = _tags(mv, status)
    if existing is None:
        version = client.create_model_version(mv.name, source=f"tether://{mv.id}", run_id=mlflow_run_id,
                                              tags=tags, description=mv.description or None)
        action, number, held = "created", version.version, set()
    else:
        number, action = existing.version, "unchanged"
        for key, value in tags.items():
            if (existing.tags or {}).get(key) != value:
                client.set_model_version_tag(mv.name, number, key, value)
                action = "updated"
        held = set(client.get_model_version(mv.name, number).aliases or ())
    for alias in set(aliases) - held:
        client.set_registered_model_alias(mv.name, alias, number)
        action = "updated" if action == "unchanged" else action
    for alias in held - set(aliases):
        client.delete_registered_model_alias(mv.name, alias)
        action = "updated" if action == "unchanged" else action
    return action, int(number)


def _run_links(client: Any) -> dict[str, str]:
    """tether run id -> MLflow run id, for every mirrored run."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    links: dict[str, str] = {}
    for start in range(0, len(experiments), 100):
        for run in client.search_runs(experiments[start:start + 100], filter_string="tags.`tether.run_id` != ''",
                                      max_results=50_000):
            links.setdefault(run.data.tags["tether.run_id"], run.info.run_id)
    return links


def sync_registry(store: Any, client: Any, names: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Sync every model (or those in ``names``); one row per version: ``model``,
    ``version``, ``mlflow_version``, ``status``, ``aliases``, ``action``."""
    from mlflow.exceptions import MlflowException
    from tether.plugins.registry import state

    known = state.model_names(store)
    wanted = list(names) or known
    for name in wanted:
        if name not in known:
            from tether.errors import did_you_mean

            raise NotFoundError(f"no model named '{name}' in the workspace{did_you_mean(name, known)}")
    try:
        links = _run_links(client)
        rows = []
        for name in wanted:
            held: dict[str, list[str]] = {}
            for alias, mv_id in state.aliases(store, name).items():
                held.setdefault(mv_id, []).append(alias)
            _ensure_model(client, name)
            synced = synced_versions(client, name)
            for mv in state.versions(store, name):
                status = state.status_of(store, mv)
                mine = tuple(sorted(held.get(mv.id, ())))
                action, number = sync_version(client, mv, status=status, aliases=mine,
                                              mlflow_run_id=links.get(mv.run_id or ""), existing=synced.get(mv.id))
                rows.append({"model": name, "version": mv.version, "mlflow_version": number,
                             "status": status, "aliases": list(mine), "action": action})
    except MlflowException as exc:
        raise StoreError(f"mlflow: {one_line(exc)}") from None
    return rows


def sync_runs(workspace: Any, tracker: Any) -> list[dict[str, Any]]:
    """Mirror every finished run of the workspace that MLflow lacks (found by tag
    ``tether.run_id``) through ``tracker``: params, metric series from the store, tags,
    notes, artifacts and the final status. Rows: ``run``, ``mlflow_run``, ``action``."""
    from mlflow.exceptions import MlflowException

    rows = []
    try:
        links = _run_links(tracker.client)
        context = SimpleNamespace(storage=workspace.storage)
        for run in sorted(workspace.store.find("run"), key=lambda r: r.started_at):
            if run.status == "running" or run.id in links:
                if run.id in links:
                    rows.append({"run": run.id, "mlflow_run": links[run.id], "action": "unchanged"})
                continue
            tracker.start_run(run, context=context)  # with the run's params
            for key, value, step, stamp in workspace.store.get_metrics(run.id):
                tracker.log_metrics(run.id, {key: value}, step=step, timestamp=dt.datetime.fromisoformat(stamp))
            tracker.set_tags(run.id, {**{f"note.{k}": v for k, v in run.notes.items()},
                                      **{f"tether.seed.{k}": str(v) for k, v in run.seeds.items()}})
            for name, ref in run.artifacts.items():
                tracker.log_artifact(run.id, ref, name=name)
            mlflow_id = tracker.mlflow_run_id(run.id)
            tracker.end_run(run, status=run.status)
            rows.append({"run": run.id, "mlflow_run": mlflow_id, "action": "created"})
    except MlflowException as exc:
        raise StoreError(f"mlflow: {one_line(exc)}") from None
    return rows

