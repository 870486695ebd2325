"""The ``previous`` rollback backend: re-activate a deployment's rollback target.

A monitor with ``alerts.rollback: {plugin: previous}`` calls it when an alert with action
``roll_back`` fires for a monitored deployment; the rollback is recorded like one asked
for with ``tether deploy rollback`` (an event, a ``rollback`` deployment, an audit entry).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether.backends import Rollback


@attrs.frozen(kw_only=True)
class PreviousVersionRollback(Rollback):
    """Roll the deployment back to the version that served before it. A deployment with
    no previous version (or one already ended) is left as it is: the monitor's report
    records ``nothing_to_roll_back`` and a warning is logged; with ``missing_ok: false``
    the ``DeploymentError`` fails the monitor instead."""

    name: ClassVar[str] = "previous"
    missing_ok: bool = True

    def rollback(self, deployment, *, reason, context):
        from tether.errors import DeploymentError

        from .state import roll_back

        try:
            return roll_back(context.store, deployment, reason, {"source": "monitor alert"})
        except DeploymentError as exc:
            if not self.missing_ok:
                raise
            context.log.warning("nothing to roll back", deployment=deployment.id, problem=str(exc))
            return None
