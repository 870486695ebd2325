"""The ``deployment_event`` record: one decision about a deployment, append-only.

A deployment's record is written once, as it started; each later change (a canary step,
a promotion, an abort, a rollback, a held step with its evidence) is an event numbered
1, 2, 3... per deployment (``name`` is the deployment id, ``version`` the number).
``tether.plugins.rollout.state.current`` folds the events into the deployment.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from tether.records import record, utcnow


@record("deployment_event")
class DeploymentEvent:
    """A decision about a deployment, with the evidence it was made on."""

    id: str
    name: str  # the deployment id: events are numbered per deployment
    version: int  # 1, 2, ... in the order they were decided
    deployment_id: str
    action: str  # advanced | held | promoted | aborted | rolled_back
    from_state: str
    to_state: str
    step: int = 0
    weight: float = 0.0
    decision: str = ""  # what was asked: promote | hold | abort | roll_back
    reason: str = ""
    evidence: dict[str, Any] = attrs.field(factory=dict)
    actor: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)
