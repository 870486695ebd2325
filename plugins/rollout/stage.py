"""The deploy stage: run the rollout strategy and write the deployment with its audit entry."""

from __future__ import annotations

from typing import Any


def deploy(backend: Any, model_version, snapshot, *, context) -> Any:
    """The deployment ``backend`` makes of ``model_version``, stored here with its audit
    entry in one transaction, and with the lineage edges (model version, snapshot) the
    runner gives it when it stores the returned record again (which keeps this one)."""
    from .state import record_start

    deployment = backend.deploy(model_version, snapshot, context=context)
    if deployment is not None and getattr(deployment, "kind", None) == "deployment":
        parents = [(model_version.id, "model_version")] + ([(snapshot.id, "snapshot")] if snapshot else [])
        record_start(context.store, deployment, parents=parents, run_id=context.run.id if context.run else None)
    return deployment
