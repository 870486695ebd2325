"""The automatic analysis between canary steps: the deployment's signals judge the canary
window against the stable one; all healthy promotes to the next step, one unhealthy rolls
back. A deployment sets it under ``analysis``::

    analysis:
      interval: 30        # seconds a step runs before it can be promoted
      min_requests: 100   # requests each arm needs before any decision
      reference: churn-inputs   # the model's reference profile (default: the newest
                                # profile made from the model version's training snapshot)
      signals:            # default (none named): every built-in signal, default thresholds
        error_rate: {max_increase: 0.01}
        latency_p95: {max_ratio: 1.5, min_delta_ms: 5}
        prediction_drift: {test: psi, threshold: 0.2}
        input_drift: {max_drifted_share: 0.5}

An unhealthy verdict is taken as soon as both arms have ``min_requests`` (a failing canary
is not kept for the whole interval); a healthy one only once the interval has passed.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
from tether.errors import ConfigError, reject_unknown_keys

DEFAULT_SIGNALS = ("error_rate", "latency_p95", "prediction_drift", "input_drift")
KEYS = ("interval", "min_requests", "reference", "signals")
#: keys the rollout plugin keeps beside them for other strategies (shadow, blue-green)
OTHER_KEYS = ("sample", "warmup_requests", "keep_warm")


@attrs.frozen(kw_only=True)
class Settings:
    interval: float = 30.0
    min_requests: int = 100
    reference: str | None = None
    signals: tuple[tuple[str, Any], ...] = ()  # (name, backend instance)


def settings_of(analysis: dict[str, Any], *, backends: Any, where: str = "analysis") -> Settings:
    """The validated analysis settings of a deployment; errors name the key."""
    if not isinstance(analysis, dict):
        raise ConfigError(f"{where}: expected a mapping, got {analysis!r}")
    reject_unknown_keys({k: v for k, v in analysis.items() if k not in OTHER_KEYS}, KEYS, where)
    interval = analysis.get("interval", 30.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
        raise ConfigError(f"{where}.interval: must be a number of seconds >= 0, got {interval!r}")
    min_requests = analysis.get("min_requests", 100)
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 1:
        raise ConfigError(f"{where}.min_requests: must be an integer >= 1, got {min_requests!r}")
    reference = analysis.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ConfigError(f"{where}.reference: expected a profile name or id, got {reference!r}")
    wanted = analysis.get("signals") or {name: {} for name in DEFAULT_SIGNALS}
    if not isinstance(wanted, dict):
        raise ConfigError(f"{where}.signals: expected a mapping of signal name -> params, got {wanted!r}")
    signals = tuple((name, backends.create("analysis_signal", name, params or {}, where=f"{where}.signals.{name}"))
                    for name, params in wanted.items())
    return Settings(interval=float(interval), min_requests=min_requests, reference=reference, signals=signals)


@attrs.define
class AnalysisContext:
    """What a signal may use besides the two windows."""

    backends: Any
    workspace: Any
    deployment: Any
    reference_name: str | None = None
    _reference: Any = attrs.field(default=False, init=False)

    def reference(self):
        """The model's reference profile (a monitoring ``DataProfile``), or ``None``."""
        if self._reference is False:
            self._reference = _find_reference(self.workspace, self.deployment, self.reference_name)
        return self._reference


def _find_reference(workspace: Any, deployment: Any, name: str | None):
    from tether.plugins.monitoring.profile_store import find_profile, load_profile

    if name:
        return load_profile(workspace, find_profile(workspace, name), with_sample=False)
    version = workspace.get(deployment.model_version_id, kind="model_version")
    snapshot_id = getattr(version, "snapshot_id", None)
    if not snapshot_id:
        return None
    for profile in workspace.store.find("profile"):  # newest first
        if profile.snapshot_id == snapshot_id:
            return load_profile(workspace, profile, with_sample=False)
    return None


@attrs.frozen(kw_only=True)
class Verdict:
    healthy: bool
    reason: str
    evidence: dict[str, Any]


def judge(settings: Settings, stable: Any, canary: Any, *, context: AnalysisContext, step: int,
          weight: float) -> Verdict | None:
    """The verdict on the current step, or ``None`` while the windows are too small."""
    if min(stable.requests, canary.requests) < settings.min_requests:
        return None
    results = []
    for name, signal in settings.signals:
        try:
            result = dict(signal.measure(stable, canary, context=context))
            result["healthy"] = bool(result.get("healthy"))
        except Exception as exc:  # a signal that cannot judge fails closed
            result = {"healthy": False, "detail": f"signal raised {type(exc).__name__}: {exc}"}
        results.append({"signal": name, **result})
    healthy = all(r["healthy"] for r in results)
    elapsed = time.monotonic() - min(stable.started, canary.started)
    if healthy and elapsed < settings.interval:
        return None
    reason = "; ".join(f"{r['signal']}: {r.get('detail', 'unhealthy')}" for r in results if not r["healthy"])
    evidence = {"step": step, "weight": round(weight * 100, 3), "seconds": round(elapsed, 3),
                "window": {"stable": stable.summary(), "canary": canary.summary()},
                "signals": _jsonable(results)}
    return Verdict(healthy=healthy, reason=reason or "every signal healthy", evidence=evidence)


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
