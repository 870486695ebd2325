"""The built-in analysis signals (backend kind ``analysis_signal``): error rate, p95
latency, prediction drift and input drift. Each compares the canary's window with the
stable version's; their parameters are the thresholds a deployment sets under
``analysis.signals.<name>``. The drift signals reuse the monitor's drift tests and
profiles (``tether.plugins.monitoring``)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from tether.backends import AnalysisSignal
from tether.validators import at_least, share


class _Signal(AnalysisSignal):
    """The built-ins are used by the server only, so they need the ``serve`` extra."""

    requires: ClassVar[tuple[str, ...]] = ("starlette", "uvicorn")
    extra: ClassVar[str | None] = "serve"


def _healthy(detail: str, **values: Any) -> dict[str, Any]:
    return {"healthy": True, "value": None, "baseline": None, "threshold": None, "detail": detail, **values}


@attrs.frozen(kw_only=True)
class ErrorRate(_Signal):
    """Unhealthy when the canary's share of failed predictions exceeds the stable
    version's by more than ``max_increase`` (an absolute share)."""

    name: ClassVar[str] = "error_rate"
    max_increase: float = attrs.field(default=0.01, validator=share)

    def measure(self, stable, canary, *, context):
        limit = stable.error_rate + self.max_increase
        healthy = canary.error_rate <= limit
        return {"healthy": healthy, "value": round(canary.error_rate, 6), "baseline": round(stable.error_rate, 6),
                "threshold": round(limit, 6),
                "detail": f"canary error rate {canary.error_rate:.2%} ({canary.errors}/{canary.requests}) vs "
                          f"stable {stable.error_rate:.2%}; limit {limit:.2%}"}


@attrs.frozen(kw_only=True)
class LatencyP95(_Signal):
    """Unhealthy when the canary's p95 latency is above ``max_ratio`` times the stable
    version's and at least ``min_delta_ms`` slower (so sub-millisecond noise never fails)."""

    name: ClassVar[str] = "latency_p95"
    max_ratio: float = attrs.field(default=1.5, validator=at_least(1))
    min_delta_ms: float = attrs.field(default=5.0, validator=at_least(0))

    def measure(self, stable, canary, *, context):
        import numpy as np

        cur, ref = canary.latencies_ms(), stable.latencies_ms()
        if not cur.size or not ref.size:
            return _healthy("no latencies on one arm yet")
        p_cur, p_ref = float(np.percentile(cur, 95)), float(np.percentile(ref, 95))
        limit = max(p_ref * self.max_ratio, p_ref + self.min_delta_ms)
        return {"healthy": p_cur <= limit, "value": round(p_cur, 3), "baseline": round(p_ref, 3),
                "threshold": round(limit, 3),
                "detail": f"canary p95 {p_cur:.2f} ms vs stable {p_ref:.2f} ms; limit {limit:.2f} ms"}


def _profile(frame):
    import pyarrow as pa
    from tether.plugins.monitoring.profiles import profile_batches

    return profile_batches([pa.Table.from_pandas(frame, preserve_index=False)], sample_rows=0)


def _drifted(reference, frame, *, context, tests, test_params=None) -> tuple[list[str], list[str]]:
    """(tested columns, drifted columns) of ``frame`` against the profile ``reference``."""
    from tether.plugins.monitoring.compare import compare

    results, _findings = compare(reference, _profile(frame), backends=context.backends, tests=tests,
                                 test_params=test_params)
    return [r.column for r in results], [r.column for r in results if r.drifted]


def _fitting(test: str, reference, backends) -> dict[str, list[str]]:
    """``test`` for every reference column it applies to (the others get the default)."""
    applies_to = backends.get("drift", test, where="test").applies_to
    return {name: [test] for name, sketch in reference.columns.items() if applies_to in ("both", sketch.kind)}


@attrs.frozen(kw_only=True)
class PredictionDrift(_Signal):
    """Unhealthy when the canary's outputs (``prediction``, ``score``) drift from the stable
    version's on the same period's traffic, by the drift test ``test`` (default: the
    monitor's choice per column, p-value tests on small windows) at ``threshold``."""

    name: ClassVar[str] = "prediction_drift"
    test: str | None = None
    threshold: float | None = None

    def measure(self, stable, canary, *, context):
        ref, cur = stable.outputs(), canary.outputs()
        columns = [c for c in ("prediction", "score") if c in ref.columns and c in cur.columns]
        if ref.empty or cur.empty or not columns:
            return _healthy("no outputs on one arm yet")
        reference = _profile(ref[columns])
        tests = _fitting(self.test, reference, context.backends) if self.test else None
        params = {self.test: {"threshold": self.threshold}} if self.test and self.threshold is not None else None
        tested, drifted = _drifted(reference, cur[columns], context=context, tests=tests, test_params=params)
        how = self.test or "default tests"
        return {"healthy": not drifted, "value": drifted, "baseline": tested, "threshold": self.threshold,
                "detail": (f"canary outputs drifted from stable on {', '.join(drifted)} ({how})" if drifted
                           else f"canary outputs match stable on {', '.join(tested) or 'nothing'} ({how})")}


@attrs.frozen(kw_only=True)
class InputDrift(_Signal):
    """Unhealthy when more than ``max_drifted_share`` of the input columns the canary
    received drift from the model's reference profile, by the drift test ``test`` (default:
    the monitor's choice per column) at ``threshold``; the stable arm's drift is reported
    beside it (``test`` applies to the columns it can test; the others get the default).
    Healthy, with a note, when the model has no reference profile."""

    name: ClassVar[str] = "input_drift"
    max_drifted_share: float = attrs.field(default=0.5, validator=share)
    test: str | None = None
    threshold: float | None = None

    def measure(self, stable, canary, *, context):
        reference = context.reference()
        if reference is None:
            return _healthy("no reference profile for the model; input drift not judged")
        frame = canary.inputs()
        if frame.empty:
            return _healthy("no inputs on the canary yet")
        tests = _fitting(self.test, reference, context.backends) if self.test else None
        params = {self.test: {"threshold": self.threshold}} if self.test and self.threshold is not None else None
        tested, drifted = _drifted(reference, frame, context=context, tests=tests, test_params=params)
        base = stable.inputs()
        stable_drifted = (_drifted(reference, base, context=context, tests=tests, test_params=params)[1]
                          if not base.empty else [])
        value = len(drifted) / len(tested) if tested else 0.0
        return {"healthy": value <= self.max_drifted_share, "value": round(value, 4),
                "baseline": stable_drifted, "threshold": self.max_drifted_share,
                "detail": f"{len(drifted)} of {len(tested)} input columns drifted on the canary "
                          f"({', '.join(drifted) or 'none'}); stable: {', '.join(stable_drifted) or 'none'}"}


SIGNALS: tuple[type, ...] = (ErrorRate, LatencyP95, PredictionDrift, InputDrift)
