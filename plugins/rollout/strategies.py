"""The serving strategies: ``shadow``, ``canary`` and ``blue_green``.

Each validates its parameters, builds (and so verifies) the model version's bundle and
returns the deployment's starting record; the live routing is done by a router reading
the environment's active deployment (``tether.plugins.rollout.state``), which advances
or rolls it back. The version serving the environment (``stable``, by default the one
the environment's live deployment serves) is the rollback target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from tether.backends import KINDS, Rollout
from tether.errors import ConfigError, DeploymentError
from tether.validators import at_least, share

from .params import Analysis, Fallback, check_environment, check_steps

if TYPE_CHECKING:  # pragma: no cover
    from tether.records import Deployment


def _check_key(inst, attribute, value) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"must be a non-empty field name, got {value!r}", key=attribute.name)


@attrs.frozen(kw_only=True)
class ServingRollout(Rollout):
    """What every serving strategy takes: the environment, the stable version and the fallback."""

    name: ClassVar[str] = "serving"
    #: whether a version must already serve the environment (to compare with or mirror)
    needs_stable: ClassVar[bool] = True
    environment: str = attrs.field(default="production", validator=check_environment)
    stable: str | None = attrs.field(default=None, validator=_check_key)
    fallback: Fallback = attrs.field(factory=Fallback)

    def start(self) -> dict[str, Any]:
        """The starting ``state``, ``weight``, ``steps``, ``sticky_key`` and ``analysis``."""
        raise NotImplementedError

    def preflight(self, *, context) -> None:
        """Check the fallback rule imports (it runs inside the router later)."""
        if self.fallback.rule is not None:
            from tether.callables import import_callable

            import_callable(self.fallback.rule, where="params.fallback.rule")

    def deploy(self, model_version, snapshot, *, context) -> Deployment:
        from tether import audit
        from tether.plugins.bundles import load_bundle
        from tether.records import Deployment, new_id

        from .state import active_deployment, serving_version

        store = context.store
        live = active_deployment(store, self.environment)
        if live is not None and live.strategy in ("shadow", "canary", "blue_green") \
                and live.state in ("pending", "active"):
            raise DeploymentError(f"environment '{self.environment}' has deployment {live.id} under way "
                                  f"({live.strategy}, {live.state}); promote, abort or roll it back first")
        stable = self._stable(context) if self.stable else (serving_version(live) if live is not None else None)
        if stable == model_version.id:
            raise DeploymentError(f"{model_version.id} already serves environment '{self.environment}'")
        if stable is None and self.needs_stable:
            raise DeploymentError(f"a {self.name} deployment needs a version serving environment '{self.environment}' "
                                  "to compare with; deploy the first version with blue_green, or pass stable")
        bundle = load_bundle(context.workspace, model_version)  # built if needed, and verified to load
        start = self.start()
        return Deployment(
            id=new_id("deploy"), model_version_id=model_version.id, target=self.name, status=start["state"],
            environment=self.environment, strategy=self.name, stable_version_id=stable, rollback_target=stable,
            fallback=self.fallback.as_dict(), bundle_id=bundle.id, actor=audit.actor(), **start)

    def _stable(self, context) -> str:
        return context.workspace.resolve(self.stable, kind="model_version", hint="tether models ls").id


@attrs.frozen(kw_only=True)
class ShadowRollout(ServingRollout):
    """Mirror ``sample`` of the stable version's traffic to the new version; its outputs
    are logged, never returned. ``promote`` makes it serve all traffic."""

    name: ClassVar[str] = "shadow"
    sample: float = attrs.field(default=1.0, validator=share)

    def start(self) -> dict[str, Any]:
        return {"state": "active", "weight": 0.0, "analysis": {"sample": self.sample}}


@attrs.frozen(kw_only=True)
class CanaryRollout(ServingRollout):
    """Send ``steps[0]``% of the traffic to the new version, sticky per ``sticky_key``,
    and move to the next step each time the analysis (or an operator) promotes it."""

    name: ClassVar[str] = "canary"
    steps: tuple[float, ...] = attrs.field(default=(5.0, 25.0, 50.0, 100.0), validator=check_steps)
    sticky_key: str | None = attrs.field(default=None, validator=_check_key)
    analysis: Analysis = attrs.field(factory=Analysis)

    def preflight(self, *, context) -> None:
        super().preflight(context=context)
        if "analysis_signal" not in KINDS:
            return
        for signal, params in self.analysis.signals.items():  # each signal builds with its parameters
            context.create("analysis_signal", signal, params, where=f"params.analysis.signals.{signal}")

    def start(self) -> dict[str, Any]:
        first = float(self.steps[0])
        return {"state": "promoted" if first >= 100 else "active", "weight": first, "steps": tuple(self.steps),
                "step": 0, "sticky_key": self.sticky_key, "analysis": self.analysis.as_dict()}


@attrs.frozen(kw_only=True)
class BlueGreenRollout(ServingRollout):
    """Start the new (green) version beside the serving (blue) one, which keeps all the
    traffic until ``promote`` switches it at once; blue stays warm ``keep_warm`` seconds
    as the rollback target. The first version of an environment may start this way."""

    name: ClassVar[str] = "blue_green"
    needs_stable: ClassVar[bool] = False
    warmup_requests: int = attrs.field(default=10, validator=at_least(0))
    keep_warm: float = attrs.field(default=600.0, validator=at_least(0))

    def start(self) -> dict[str, Any]:
        return {"state": "pending", "weight": 0.0,
                "analysis": {"warmup_requests": self.warmup_requests, "keep_warm": self.keep_warm}}
