"""Registering and promoting from Python, outside a chain::

    from tether.plugins.registry.api import register_model, promote

    with Workspace.open(PluginHost(), ".tether") as ws:
        mv = register_model(ws, "churn", fitted_estimator, owner="risk-team",
                            intended_use="monthly churn outreach")
        promote(ws, f"{mv.name}@{mv.version}", "candidate", reason="beats v2 on holdout")

The policy is the workspace's (``<workspace>/policy.yaml``) unless one is given.
"""

from __future__ import annotations

from typing import Any

from tether.errors import ConfigError, NotFoundError
from tether.names import check_name

from .registry import CARD_FIELDS, register_version


def _as_model(workspace: Any, model: Any) -> Any:
    """A stored ``TrainedModel`` for ``model``: the record itself, or an estimator pickled
    into the workspace as a content-addressed artifact."""
    from tether.records import TrainedModel

    if isinstance(model, TrainedModel):
        if workspace.store.get(model.id, kind="model") is None:
            workspace.store.put(model)
        return model
    if model is None or isinstance(model, (str, bytes, int, float, dict, list)):
        raise ConfigError(f"register_model: expected a trained model object or a TrainedModel record, "
                          f"got {type(model).__name__}")
    artifact = workspace.put_object(model)
    get_params = getattr(model, "get_params", None)
    params = {}
    if callable(get_params):
        params = {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
                  for k, v in get_params(deep=False).items()}
    record = TrainedModel(id=TrainedModel.id_for(artifact), artifact=artifact,
                          framework=type(model).__module__.split(".")[0], estimator=type(model).__qualname__,
                          params=params, step="api")
    workspace.store.put(record)
    return record


def register_model(workspace: Any, name: str, model: Any, *, evaluation: Any = None, force: bool = False,
                   run_id: str | None = None, description: str = "", snapshot_id: str | None = None,
                   code_version: str = "", actor: str | None = None, **card: Any):
    """Register ``model`` (an estimator, or a ``TrainedModel`` record) as the next version
    of ``name`` and return the ``ModelVersion``.

    :param evaluation: an ``Evaluation`` record or its id; its metrics are kept on the version.
    :param force: add a version even if the model is identical to the latest one.
    :param run_id: the run that produced the model (its commit becomes the code version).
    :param card: model-card fields: ``intended_use``, ``limitations``, ``owner``, ``license``.
    """
    check_name(name, "name", what="model name")
    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        from tether.errors import did_you_mean

        raise ConfigError(f"register_model: unknown model-card field '{unknown[0]}'"
                          f"{did_you_mean(unknown[0], CARD_FIELDS)} (fields: {', '.join(CARD_FIELDS)})")
    store = workspace.store
    if isinstance(evaluation, str):
        found = store.get(evaluation, kind="evaluation")
        if found is None:
            raise NotFoundError(f"no evaluation '{evaluation}' in {workspace.root}")
        evaluation = found
    run = store.get(run_id, kind="run") if run_id else None
    if run_id and run is None:
        raise NotFoundError(f"no run '{run_id}' in {workspace.root}")
    if run is not None and not code_version:
        code_version = str((run.code or {}).get("git_commit", ""))
    record = _as_model(workspace, model)
    if snapshot_id is None and record.feature_set_id:
        features = store.get(record.feature_set_id, kind="features")
        snapshot_id = features.snapshot_id if features else None
    version, _created = register_version(store, name=name, model=record, evaluation=evaluation, force=force,
                                         run_id=run_id, code_version=code_version, snapshot_id=snapshot_id,
                                         description=description, card=card, actor=actor)
    return version


def promote(workspace: Any, ref: str, to: str, *, reason: str = "", override: bool = False,
            actor: str | None = None, policy: Any = None):
    """Move the version ``ref`` names to status ``to`` under the workspace policy."""
    from .policy import load_policy
    from .state import resolve_ref, transition

    mv = resolve_ref(workspace.store, ref)
    return transition(workspace.store, mv, to, actor=actor, reason=reason, override=override,
                      policy=policy or load_policy(workspace.root))


def set_alias(workspace: Any, ref: str, alias: str, *, move: bool = False, reason: str = "",
              actor: str | None = None):
    """Point ``alias`` (``champion``) at the version ``ref`` names."""
    from . import state

    return state.set_alias(workspace.store, state.resolve_ref(workspace.store, ref), alias, move=move,
                           reason=reason, actor=actor)
