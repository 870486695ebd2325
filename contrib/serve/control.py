"""The control loop of a server: one thread that owns the workspace (its store connection
and storage), polls the environment's active deployment, loads the versions a new plan
needs before swapping the router's table, and runs the canary analysis, recording each
decision through the rollout plugin. The request path never touches the store."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import attrs
from tether.log import get_logger

from .analysis import AnalysisContext, judge, settings_of
from .plan import CANARY, Plan, active_plan, load_version, record_decision
from .routing import Router, Table


class Controller:
    """Keeps ``router`` on the active deployment of ``environment`` in ``workspace``."""

    def __init__(self, *, host: Any, workspace: str, environment: str, router: Router,
                 reload_interval: float = 1.0) -> None:
        self.host, self.workspace_path, self.environment = host, workspace, environment
        self.router, self.reload_interval = router, reload_interval
        self.log = get_logger("tether.serve")
        self.models: dict[str, Any] = {}  # version -> bundle, kept warm across plans
        self.last_error: str | None = None
        self.decisions: deque[dict[str, Any]] = deque(maxlen=50)
        self.ticks = 0
        self._failed_token: tuple | None = None
        self._decided: tuple | None = None  # the plan a decision was recorded for
        self._swapped_at = time.monotonic()
        self._settings: tuple[tuple | None, Any] = (None, None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tether-serve-control", daemon=True)

    def start(self, wait: float | None = 60.0) -> Controller:
        """Start the loop; wait until the first poll is done (a plan loaded or not)."""
        self._thread.start()
        self._ready.wait(wait)
        return self

    def wake(self) -> None:
        """Poll now instead of at the next interval (``SIGHUP`` does this)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(30)

    def _run(self) -> None:
        from tether.workspace import Workspace

        ws = Workspace.open(self.host, self.workspace_path)
        try:
            while not self._stop.is_set():
                try:
                    again = self.tick(ws)
                    if self._failed_token is None:
                        self.last_error = None
                except Exception as exc:  # keep serving the last good table
                    again = False
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self.log.warning("serve control loop failed", error=self.last_error)
                self.ticks += 1
                self._ready.set()
                if not again:
                    self._wake.wait(self.reload_interval)
                    self._wake.clear()
        finally:
            ws.close()

    def tick(self, ws: Any) -> bool:
        """One poll; ``True`` when a decision changed the deployment (poll again at once)."""
        dep, plan = active_plan(ws.store, self.environment)
        table = self.router.table
        if plan is None:
            if table is not None:
                self.router.swap(None)
            return False
        if table is None or table.plan.token != plan.token:
            if plan.token == self._failed_token:
                return False
            loaded = self._load(ws, plan)
            if loaded is not None:
                self.router.swap(loaded)
                self._swapped_at = time.monotonic()
            return False
        if plan.mode == CANARY:
            return self._analyse(ws, dep, plan)
        keep_warm = plan.analysis.get("keep_warm")
        if table.plan.previous and plan.state == "promoted" and keep_warm is not None \
                and time.monotonic() - self._swapped_at >= float(keep_warm):
            self._cool(table)  # blue-green: the old version was kept warm long enough
        return False

    def _cool(self, table: Table) -> None:
        """Drop the previous version of a switched blue-green deployment (same routing)."""
        plan = attrs.evolve(table.plan, warm=(table.plan.primary,), previous=None)
        self.models = {plan.primary: table.models[plan.primary]}
        self.router.table = Table(plan=plan, models=dict(self.models), rule=table.rule)
        self.log.info("previous version released", deployment=plan.deployment_id, after_seconds=time.monotonic()
                      - self._swapped_at)

    def _load(self, ws: Any, plan: Plan) -> Table | None:
        """The table of ``plan`` with every version it keeps warm loaded (bundles verified);
        ``None`` (reported, not retried until the deployment changes) if one cannot be."""
        from tether.callables import import_callable

        what = f"deployment {plan.deployment_id}"
        try:
            models = {}
            for version in plan.warm:
                what = f"model version {version} of deployment {plan.deployment_id}"
                models[version] = self.models.get(version) or load_version(ws, version)
            what = f"deployment {plan.deployment_id}"
            rule = plan.fallback.get("rule") if plan.fallback.get("mode") == "rule" else None
            rule_fn = import_callable(rule, where=f"{what}: fallback.rule") if rule else None
        except Exception as exc:
            self._failed_token = plan.token
            self.last_error = f"{what} cannot be served: {type(exc).__name__}: {exc}"
            self.log.warning("serve plan not loaded; the previous one keeps serving", error=self.last_error)
            return None
        self._failed_token = None
        self.models = models  # versions no longer needed are dropped; the warm ones stay
        self.log.info("serving plan", deployment=plan.deployment_id, strategy=plan.strategy, state=plan.state,
                      mode=plan.mode, primary=plan.primary, candidate=plan.candidate, weight=plan.weight)
        return Table(plan=plan, models=models, rule=rule_fn)

    def _analyse(self, ws: Any, dep: Any, plan: Plan) -> bool:
        if plan.token == self._decided:
            return False  # decided; waiting for the rollout plugin's new state
        token, settings = self._settings
        if token != plan.token:
            settings = settings_of(plan.analysis, backends=self.host.backends,
                                   where=f"deployment {plan.deployment_id}: analysis")
            self._settings = (plan.token, settings)
        arms = self.router.stats.arms
        stable, canary = arms.get("stable"), arms.get("canary")
        if stable is None or canary is None:
            return False
        context = AnalysisContext(backends=self.host.backends, workspace=ws, deployment=dep,
                                  reference_name=settings.reference)
        verdict = judge(settings, stable, canary, context=context, step=plan.step, weight=plan.weight)
        if verdict is None:
            return False
        self._decided = plan.token
        decision = {"at": time.time(), "deployment_id": plan.deployment_id, "step": plan.step,
                    "decision": "promote" if verdict.healthy else "roll_back", "reason": verdict.reason,
                    "recorded": False, "error": None}
        self.decisions.append(decision)
        try:
            record_decision(ws.store, dep, healthy=verdict.healthy, reason=verdict.reason, evidence=verdict.evidence)
        except Exception as exc:  # e.g. nothing to roll back to: say so, keep serving this plan
            decision["error"] = f"{type(exc).__name__}: {exc}"
            self.log.warning("canary decision not recorded", deployment=plan.deployment_id, error=decision["error"])
            return False
        decision["recorded"] = True
        self.log.info("canary decision", deployment=plan.deployment_id, healthy=verdict.healthy,
                      reason=verdict.reason)
        return True
