"""The deploy stage: run the rollout strategy and write the deployment's audit entry."""

from __future__ import annotations

from typing import Any


def deploy(backend: Any, model_version, snapshot, *, context) -> Any:
    """The deployment ``backend`` makes of ``model_version``; the runner stores it with its
    lineage (model version, snapshot). The audit entry is written here, as the stage ends."""
    from tether import audit

    from .state import started_details

    deployment = backend.deploy(model_version, snapshot, context=context)
    if deployment is not None and getattr(deployment, "kind", None) == "deployment":
        details = {**started_details(deployment), "run": context.run.id if context.run else None}
        audit.append(context.store, action="deployment.started", subject=deployment.id, details=details,
                     actor=deployment.actor or None)
    return deployment
