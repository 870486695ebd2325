"""Judging an evaluation against its gates: every rule gives a :class:`GateOutcome`; each
failed one also a finding, so a failed evaluation names every rule that failed."""

from __future__ import annotations

import attrs
from tether.records import Finding, GateOutcome, SliceScore

from .params import EvaluateParams
from .tasks import higher_is_better, primary_metric


def judge(params: EvaluateParams, *, task: str, metrics: dict[str, float], baselines: dict[str, dict[str, float]],
          skipped: dict[str, str], slices: list[SliceScore], has_scores: bool) -> list[GateOutcome]:
    """Outcomes of every rule in ``params`` (``skipped`` baselines: name -> why not scored)."""
    out: list[GateOutcome] = []
    for gate in ("min", "max"):
        for metric, bound in getattr(params, gate).items():
            out.append(_bound(f"{gate}.{metric}", metric, metrics.get(metric), bound, gate, ""))
    for name, rule in params.beats.items():
        metric, margin = params.beats_rule(name, rule)
        metric = metric or primary_metric(task, has_scores=has_scores, k=params.k)
        out.append(_beats(name, metric, margin, metrics, baselines, skipped))
    for key, value in params.max_regression.items():
        rules = value.items() if isinstance(value, dict) else [(key, value)]
        name = key if isinstance(value, dict) else params.baseline
        for metric, allowed in rules:
            out.append(_regression(name, metric, float(allowed), metrics, baselines, skipped))
    for i, rule in enumerate(params.slice_gates):
        out.extend(_slice_rule(i, rule, slices, params.min_support))
    return out


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def _bound(rule: str, metric: str, value: float | None, bound: float, gate: str, segment: str) -> GateOutcome:
    where = f"{segment}: " if segment else ""
    if value is None:
        return GateOutcome(rule=rule, passed=False, metric=metric, bound=bound, segment=segment,
                           message=f"{where}{metric} was not computed on these rows, so it cannot meet the {gate} "
                                   f"{bound:g}")
    ok = value >= bound if gate == "min" else value <= bound
    relation = ("at least" if gate == "min" else "at most") if ok else ("below" if gate == "min" else "above")
    message = f"{where}{metric} {_fmt(value)} is {relation} the {'minimum' if gate == 'min' else 'maximum'} {bound:g}"
    return GateOutcome(rule=rule, passed=ok, metric=metric, value=value, bound=bound, segment=segment,
                       message=message)


def _beats(name: str, metric: str, margin: float, metrics, baselines, skipped) -> GateOutcome:
    rule = f"beats.{name}"
    if name in skipped:
        return GateOutcome(rule=rule, passed=True, metric=metric, message=f"skipped: {skipped[name]}")
    value, base = metrics.get(metric), baselines.get(name, {}).get(metric)
    if value is None or base is None:
        return GateOutcome(rule=rule, passed=False, metric=metric,
                           message=f"{metric} was not computed for the {'model' if value is None else name}; "
                                   "name a metric both have (beats: {" + name + ": {metric: ..., margin: ...}})")
    better = higher_is_better(metric)
    needed = base + margin if better else base - margin
    ok = value >= needed if better else value <= needed
    verb = "beats" if ok else "does not beat"
    return GateOutcome(rule=rule, passed=ok, metric=metric, value=value, bound=needed,
                       message=f"{metric} {_fmt(value)} {verb} {name} {_fmt(base)} by {margin:g} "
                               f"(needs {'>=' if better else '<='} {_fmt(needed)})")


def _regression(name: str, metric: str, allowed: float, metrics, baselines, skipped) -> GateOutcome:
    rule = f"max_regression.{name}.{metric}"
    if name in skipped:
        return GateOutcome(rule=rule, passed=True, metric=metric, message=f"skipped: {skipped[name]}")
    value, base = metrics.get(metric), baselines.get(name, {}).get(metric)
    if value is None or base is None:
        return GateOutcome(rule=rule, passed=False, metric=metric,
                           message=f"{metric} was not computed for the {'model' if value is None else name}")
    drop = base - value if higher_is_better(metric) else value - base
    ok = drop <= allowed
    moved = "fell" if higher_is_better(metric) else "rose"
    message = (f"{metric} {moved} from {_fmt(base)} ({name}) to {_fmt(value)}, "
               f"{'within' if ok else 'more than'} the allowed {allowed:g}")
    return GateOutcome(rule=rule, passed=ok, metric=metric, value=value, bound=allowed, message=message)


def _slice_rule(i: int, rule, slices: list[SliceScore], min_support: int) -> list[GateOutcome]:
    out = []
    for s in slices:
        if s.slice != rule.slice:
            continue
        segment = f"{s.slice}={s.segment}"
        if s.low_support:
            out.append(GateOutcome(rule=f"slice_gates[{i}]", passed=True, metric=rule.metric, segment=segment,
                                   message=f"{segment}: support {s.support} is below min_support {min_support}; "
                                           "not gated"))
            continue
        value = s.metrics.get(rule.metric)
        if value is None:
            out.append(GateOutcome(rule=f"slice_gates[{i}]", passed=True, metric=rule.metric, segment=segment,
                                   message=f"{segment}: {rule.metric} is undefined on this segment; not gated"))
            continue
        for gate in ("min", "max"):
            bound = getattr(rule, gate)
            if bound is not None:
                outcome = _bound(f"slice_gates[{i}]", rule.metric, value, bound, gate, segment)
                low, high = s.intervals.get(rule.metric, (None, None))
                if low is not None:
                    outcome = attrs.evolve(outcome, message=outcome.message +
                                           f" (support {s.support}, interval {low:.3f}-{high:.3f})")
                out.append(outcome)
    return out


CHECKS = {"min.": "gate.min", "max.": "gate.max", "beats.": "gate.beats", "max_regression.": "gate.regression",
          "slice_gates[": "gate.slice"}


def findings(outcomes: list[GateOutcome]) -> list[Finding]:
    """One error finding per failed rule; a skipped rule is an info finding."""
    out = []
    for o in outcomes:
        check = next(v for k, v in CHECKS.items() if o.rule.startswith(k))
        if not o.passed:
            out.append(Finding(check=check, severity="error", message=o.message,
                               evidence={"rule": o.rule, "metric": o.metric, "value": o.value, "bound": o.bound,
                                         **({"segment": o.segment} if o.segment else {})}))
        elif o.message.startswith("skipped"):
            out.append(Finding(check=check, severity="warning", message=f"{o.rule}: {o.message}"))
    return out
