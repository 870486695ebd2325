"""Deployment state: the records a router reads and the decisions that change them.

States: ``pending`` (blue-green: the new version runs beside the old, which serves),
``active`` (canary at a step, shadow mirroring), ``promoted`` (the new version serves
all traffic), ``completed`` (a batch scoring), ``aborted`` and ``rolled_back`` (ended).

Legal decisions (anything else raises :class:`~tether.errors.DeploymentError`):

=============  =====================  ==========================================
strategy       from                   decision -> to
=============  =====================  ==========================================
canary         active                 promote -> active (next step) | promoted (last)
shadow         active                 promote -> promoted
blue_green     pending                promote -> promoted (the atomic switch)
any serving    pending, active        abort -> aborted; hold -> unchanged (evidence kept)
any            pending, active,       roll_back -> rolled_back, and a ``rollback``
               promoted, completed    deployment re-activates ``rollback_target``
=============  =====================  ==========================================

Every decision is an append-only ``deployment_event`` (numbered per deployment in one
transaction, so two routers deciding at once cannot both win) with its audit entry,
written in that same transaction (as a new deployment is with its own).
"""

from __future__ import annotations

from typing import Any

import attrs
from tether import audit
from tether.errors import DeploymentError
from tether.records import Deployment, new_id

from .records import DeploymentEvent

STATES = ("pending", "active", "promoted", "completed", "aborted", "rolled_back")
#: states in which a deployment governs its environment's traffic
LIVE_STATES = ("pending", "active", "promoted", "completed")
SERVING_STRATEGIES = ("shadow", "canary", "blue_green")


def normalized(deployment: Deployment) -> Deployment:
    """``deployment`` with ``strategy`` and ``state`` filled in for records written before
    they existed (from ``target`` and ``status``)."""
    if deployment.strategy and deployment.state:
        return deployment
    return attrs.evolve(deployment, strategy=deployment.strategy or deployment.target,
                        state=deployment.state or deployment.status)


def events(store: Any, deployment_id: str) -> list[DeploymentEvent]:
    """The deployment's events, oldest first."""
    return sorted(store.find("deployment_event", name=deployment_id), key=lambda e: e.version)


def current(store: Any, deployment: Deployment, *, history: list[DeploymentEvent] | None = None) -> Deployment:
    """The deployment as it stands now: its stored start with every event applied."""
    history = events(store, deployment.id) if history is None else history
    now = normalized(deployment)
    if history:
        last = history[-1]
        now = attrs.evolve(now, state=last.to_state, step=last.step, weight=last.weight)
    return now


def deployments(store: Any, environment: str | None = None) -> list[Deployment]:
    """Stored deployments (of ``environment`` if given), newest first, as they started."""
    found = store.find("deployment")
    return [d for d in found if environment is None or d.environment == environment]


def active_deployment(store: Any, environment: str) -> Deployment | None:
    """The deployment governing ``environment`` now, with its current state and weight:
    the newest one that is pending, active, promoted or completed; ``None`` if none."""
    for deployment in deployments(store, environment):
        now = current(store, deployment)
        if now.state in LIVE_STATES:
            return now
    return None


def previous_version(store: Any, environment: str, version: str) -> str | None:
    """The newest version other than ``version`` that a live deployment of ``environment``
    serves: what a new deployment of ``version`` would roll back to."""
    for deployment in deployments(store, environment):
        now = current(store, deployment)
        if now.state in LIVE_STATES and serving_version(now) != version:
            return serving_version(now)
    return None


def serving_version(deployment: Deployment) -> str:
    """The version taking the traffic the candidate does not: the stable one while a
    canary, shadow or blue-green rollout is under way, else the deployed one."""
    under_way = deployment.strategy in SERVING_STRATEGIES and deployment.state in ("pending", "active")
    return (deployment.stable_version_id or deployment.model_version_id) if under_way else deployment.model_version_id


def record_start(store: Any, deployment: Deployment, *, parents: list[tuple[str, str]],
                 run_id: str | None = None) -> Deployment:
    """Store a new deployment with its lineage edges and its audit entry (naming ``run_id``,
    the run of a deploy stage, if given) in one transaction."""
    extra = {"run": run_id} if run_id is not None else {}
    audit.put(store, deployment, lambda d: _change("deployment.started", d, extra), parents=parents, run_id=run_id)
    return deployment


def started_details(deployment: Deployment) -> dict[str, Any]:
    """The audit details of a started deployment."""
    return {"environment": deployment.environment, "strategy": deployment.strategy, "state": deployment.state,
            "model_version": deployment.model_version_id, "stable_version": deployment.stable_version_id,
            "weight": deployment.weight}


def advance(store: Any, deployment: Deployment, decision: str, evidence: dict[str, Any] | None = None, *,
            actor: str | None = None, reason: str = "") -> Deployment:
    """Apply ``decision`` (``promote`` or ``hold``) to the deployment; return it as it
    stands afterwards. Illegal transitions raise ``DeploymentError``."""
    history = events(store, deployment.id)
    now = current(store, deployment, history=history)
    if decision == "hold":
        _require(now, ("pending", "active"), "hold")
        return _append(store, now, history, action="held", decision=decision, to_state=now.state,
                       evidence=evidence, actor=actor, reason=reason)
    if decision != "promote":
        raise DeploymentError(f"unknown decision '{decision}' (use promote or hold; abort and roll back "
                              "have their own functions)")
    step, weight, state = _next(now)
    return _append(store, now, history, action="promoted" if state == "promoted" else "advanced", decision=decision,
                   to_state=state, step=step, weight=weight, evidence=evidence, actor=actor, reason=reason)


def _next(now: Deployment) -> tuple[int, float, str]:
    """(step, weight, state) after promoting ``now``."""
    legal = {"canary": ("active",), "shadow": ("active",), "blue_green": ("pending",)}
    if now.strategy not in legal:
        raise DeploymentError(f"deployment {now.id} ({now.strategy}) is {now.state}; there is nothing to promote")
    _require(now, legal[now.strategy], "promote")
    if now.strategy == "canary" and now.step + 1 < len(now.steps) and now.steps[now.step + 1] < 100:
        return now.step + 1, float(now.steps[now.step + 1]), "active"
    return max(len(now.steps) - 1, 0), 100.0, "promoted"


def abort(store: Any, deployment: Deployment, reason: str, evidence: dict[str, Any] | None = None, *,
          actor: str | None = None) -> Deployment:
    """Stop a pending or active rollout; the stable version keeps (or goes back to)
    serving. Return the deployment now governing the environment (``None`` if none)."""
    history = events(store, deployment.id)
    now = current(store, deployment, history=history)
    _require(now, ("pending", "active"), "abort")
    _append(store, now, history, action="aborted", decision="abort", to_state="aborted", step=now.step, weight=0.0,
            evidence=evidence, actor=actor, reason=reason)
    serving = active_deployment(store, now.environment) if now.environment else None
    if now.stable_version_id and (serving is None or serving_version(serving) != now.stable_version_id):
        return _reactivate(store, now, now.stable_version_id, reason=reason, actor=actor, relation="aborted_from")
    return serving


def roll_back(store: Any, deployment: Deployment, reason: str, evidence: dict[str, Any] | None = None, *,
              actor: str | None = None) -> Deployment:
    """End the deployment and re-activate its rollback target (a new ``rollback``
    deployment at full traffic, recorded with the reason); return that deployment.
    Without a previous version to go back to, raise ``DeploymentError``."""
    history = events(store, deployment.id)
    now = current(store, deployment, history=history)
    if now.state not in LIVE_STATES:
        raise DeploymentError(f"deployment {now.id} is already {now.state}; nothing to roll back")
    if not now.rollback_target:
        where = f" in environment '{now.environment}'" if now.environment else ""
        raise DeploymentError(f"deployment {now.id} has no previous version to roll back to (it is the first "
                              f"deployment of {now.model_version_id}{where})")
    _append(store, now, history, action="rolled_back", decision="roll_back", to_state="rolled_back", step=now.step,
            weight=0.0, evidence=evidence, actor=actor, reason=reason)
    return _reactivate(store, now, now.rollback_target, reason=reason, actor=actor, relation="rolled_back_from")


def _reactivate(store: Any, ended: Deployment, version: str, *, reason: str, actor: str | None,
                relation: str) -> Deployment:
    """A ``rollback`` deployment serving ``version`` in the ended deployment's environment."""
    earlier = next((d for d in deployments(store, ended.environment or None)
                    if d.model_version_id == version and d.id != ended.id), None)
    back = Deployment(
        id=new_id("deploy"), model_version_id=version, target="rollback", status="promoted",
        environment=ended.environment, strategy="rollback", state="promoted", weight=100.0,
        rollback_target=earlier.rollback_target if earlier is not None else None,
        fallback=dict(ended.fallback), bundle_id=None, actor=actor or audit.actor(),
        details={"replaces": ended.id, "reason": reason},
    )
    audit.put(store, back, lambda d: _change("deployment.reactivated", d, {"replaces": ended.id, "reason": reason},
                                             actor=actor),
              parents=[(version, "model_version"), (ended.id, relation)])
    return back


def _require(now: Deployment, states: tuple[str, ...], decision: str) -> None:
    if now.state not in states:
        raise DeploymentError(f"cannot {decision.replace('_', ' ')} deployment {now.id}: it is {now.state} "
                              f"(a {now.strategy} deployment can {decision.replace('_', ' ')} only when "
                              f"{' or '.join(states)})")


def _append(store: Any, now: Deployment, history: list[DeploymentEvent], *, action: str, decision: str,
            to_state: str, step: int | None = None, weight: float | None = None,
            evidence: dict[str, Any] | None, actor: str | None, reason: str) -> Deployment:
    """Write the next event of ``now``; a concurrent decision that got there first makes
    this one fail (``DeploymentError``) instead of both applying."""
    who = actor or audit.actor()
    expected = len(history) + 1

    def build(version: int) -> DeploymentEvent:
        if version != expected:
            raise DeploymentError(f"deployment {now.id} changed while deciding '{decision}'; read it again and retry")
        return DeploymentEvent(
            id=f"{now.id}-e{version}", name=now.id, version=version, deployment_id=now.id, action=action,
            from_state=now.state, to_state=to_state, step=now.step if step is None else step,
            weight=now.weight if weight is None else weight, decision=decision, reason=reason,
            evidence=dict(evidence or {}), actor=who)

    def change(event: DeploymentEvent) -> audit.Change:
        return _change(f"deployment.{action}", _applied(now, event),
                       {"event": event.id, "from": event.from_state, "reason": reason, "evidence": event.evidence},
                       actor=who)

    event = audit.put_versioned(store, build, change, kind="deployment_event", name=now.id,
                                parents=[(now.id, "deployment")])
    return _applied(now, event)


def _applied(now: Deployment, event: DeploymentEvent) -> Deployment:
    """``now`` with ``event`` applied."""
    return attrs.evolve(now, state=event.to_state, step=event.step, weight=event.weight)


def _change(action: str, deployment: Deployment, extra: dict[str, Any], *, actor: str | None = None) -> audit.Change:
    """The audit entry of ``action`` on ``deployment``: its started details and ``extra``."""
    return audit.Change(action=action, subject=deployment.id, details={**started_details(deployment), **extra},
                        actor=actor or deployment.actor or None)
