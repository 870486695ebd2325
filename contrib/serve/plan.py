"""What serving reads of a deployment: a :class:`Plan` (which versions to load, which one
answers, the canary share, the mirror), and the calls into the rollout plugin that read
deployments and record decisions.

The rollout plugin owns deployment records and their state machine; serving only reads
the environment's active deployment (``tether.plugins.rollout.state.active_deployment``)
and records the canary analysis' decisions through its ``advance`` and ``roll_back``.
"""

from __future__ import annotations

from typing import Any

import attrs

#: the modes a plan routes by
SINGLE, CANARY, SHADOW = "single", "canary", "shadow"


@attrs.frozen(kw_only=True)
class Plan:
    """How to route one deployment as it stands now.

    ``primary`` answers every request in ``single`` mode, the rest of the traffic in
    ``canary`` mode and all of it in ``shadow`` mode; ``candidate`` takes ``weight`` (a
    share in [0, 1]) of the keys in ``canary`` mode. ``mirror`` gets a copy of
    ``mirror_share`` of the requests (at most ``mirror_limit`` per plan), answered off the
    response path: the shadow version, or blue-green's green one warming up before the
    switch. ``warm`` lists every version kept loaded (the previous one stays ready).
    ``token`` changes whenever routing must change.
    """

    deployment_id: str
    environment: str
    strategy: str
    state: str
    mode: str
    primary: str | None
    candidate: str | None = None
    weight: float = 0.0
    sticky_key: str | None = None
    warm: tuple[str, ...] = ()
    fallback: dict[str, Any] = attrs.field(factory=dict)
    analysis: dict[str, Any] = attrs.field(factory=dict)
    step: int = 0
    steps: tuple[float, ...] = ()
    previous: str | None = None  # the version answering when the routed one raises (fallback "previous")
    mirror: str | None = None
    mirror_share: float = 1.0
    mirror_limit: int | None = None

    @property
    def token(self) -> tuple:
        return (self.deployment_id, self.state, self.mode, self.primary, self.candidate, self.weight, self.step)

    @property
    def arms(self) -> dict[str, str]:
        """Arm name -> version, for the response and the log (``stable``/``canary``/``shadow``,
        ``blue``/``green`` for blue-green, ``live`` for a single version)."""
        if self.mode == CANARY:
            return {"stable": self.primary, "canary": self.candidate}
        if self.mode == SHADOW:
            return {"stable": self.primary, "shadow": self.candidate}
        if self.strategy == "blue_green":
            blue = next((v for v in self.warm if v != self.candidate), None)
            return {"blue": blue, "green": self.candidate} if blue else {"green": self.candidate}
        return {"live": self.primary}


def plan_of(dep: Any) -> Plan:
    """The routing plan of a deployment record (with its events applied)."""
    strategy = getattr(dep, "strategy", "") or getattr(dep, "target", "")
    state = getattr(dep, "state", "") or getattr(dep, "status", "")
    candidate = dep.model_version_id
    stable = getattr(dep, "stable_version_id", None)
    weight = float(getattr(dep, "weight", 0.0) or 0.0) / 100.0
    common = dict(deployment_id=dep.id, environment=getattr(dep, "environment", ""), strategy=strategy, state=state,
                  sticky_key=getattr(dep, "sticky_key", None), fallback=dict(getattr(dep, "fallback", None) or {}),
                  analysis=dict(getattr(dep, "analysis", None) or {}), step=int(getattr(dep, "step", 0) or 0),
                  steps=tuple(getattr(dep, "steps", ()) or ()))
    warm = tuple(v for v in dict.fromkeys((candidate, stable)) if v)
    if strategy == "canary" and state == "active" and stable:
        if weight >= 1.0:
            return Plan(mode=SINGLE, primary=candidate, warm=warm, previous=stable, **common)
        return Plan(mode=CANARY, primary=stable, candidate=candidate, weight=max(weight, 0.0), warm=warm,
                    previous=stable, **common)
    if strategy == "shadow" and state == "active" and stable:
        share = float(common["analysis"].get("sample", 1.0))
        return Plan(mode=SHADOW, primary=stable, candidate=candidate, warm=warm, mirror=candidate,
                    mirror_share=share, **common)
    if strategy == "blue_green":
        if state in ("pending", "active") and stable:  # green warms up on copies of the first requests
            warmup = int(common["analysis"].get("warmup_requests", 0))
            return Plan(mode=SINGLE, primary=stable, candidate=candidate, warm=warm,
                        mirror=candidate if warmup else None, mirror_limit=warmup, **common)
        return Plan(mode=SINGLE, primary=candidate, candidate=candidate, warm=warm, previous=stable, **common)
    previous = stable if stable != candidate else None  # it stays warm
    return Plan(mode=SINGLE, primary=candidate, warm=warm, previous=previous, **common)


def active_plan(store: Any, environment: str) -> tuple[Any, Plan | None]:
    """The active deployment of ``environment`` and its plan (``(None, None)`` for none)."""
    from tether.plugins.rollout.state import active_deployment

    dep = active_deployment(store, environment)
    return dep, (plan_of(dep) if dep is not None else None)


def record_decision(store: Any, dep: Any, *, healthy: bool, reason: str, evidence: dict[str, Any]) -> Any:
    """Promote ``dep`` to its next step (healthy) or roll it back; the deployment now serving."""
    from tether.plugins.rollout.state import advance, roll_back

    if healthy:
        return advance(store, dep, "promote", evidence, reason=reason)
    return roll_back(store, dep, reason, evidence)


def load_version(workspace: Any, version_id: str) -> Any:
    """The verified bundle of a model version (built on first load)."""
    from tether.plugins.bundles import load_bundle

    return load_bundle(workspace, version_id)
