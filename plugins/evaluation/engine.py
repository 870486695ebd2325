"""One evaluation, whatever produced the predictions: metrics, intervals, baselines,
slices, error analysis and gates, assembled into an :class:`~tether.records.Evaluation`.

The evaluate stage, ``tether evaluate`` and ``tether.evaluate`` all end here, so a model
trained anywhere is judged with the same rules.
"""

from __future__ import annotations

from typing import Any

import attrs
from tether.errors import DataError
from tether.records import BaselineScore, Evaluation, Finding, new_id

from .baselines import dummy, rule
from .bootstrap import intervals, plan
from .error_analysis import examples
from .gates import findings as gate_findings
from .gates import judge
from .inputs import Predictions
from .metrics import best_threshold, calibration, compute, curves, per_class, residuals, sweep
from .params import DUMMY, EvaluateParams
from .slices import check_columns
from .slices import score as score_slices


@attrs.frozen(kw_only=True)
class Subject:
    """What is evaluated and where its rows come from (copied into the record)."""

    model_id: str = ""
    feature_set_id: str = ""
    split: str = "predictions"
    evaluator: str = "predictions"
    source: str = "python"
    snapshot_id: str | None = None
    label: str = ""


@attrs.frozen(kw_only=True)
class Rows:
    """The evaluated rows besides their predictions: raw columns (for slices and rules),
    their positions in the snapshot or file, key values, the training labels (the dummy's
    prior) and scores to choose a threshold on."""

    frame: Any = None
    positions: Any = None
    ids: Any = None
    id_column: str = ""
    prior: Any = None
    threshold_on: tuple[Any, Any, str] | None = None  # (label indices, scores, split name)
    pred_from_scores: bool = True


def choose_threshold(params: EvaluateParams, p: Predictions, rows: Rows) -> tuple[Predictions, dict[str, Any],
                                                                                   list[Finding]]:
    """The binary threshold: fixed, or the one maximising ``choose_threshold`` on the
    threshold split (the evaluated rows when there is none, with a warning)."""
    if p.task != "binary" or p.scores is None:
        return p, {}, []
    if not params.choose_threshold:
        return p, {"value": params.threshold, "method": "fixed"}, []
    findings = []
    if rows.threshold_on is not None:
        y, scores, split = rows.threshold_on
    else:
        y, scores, split = p.y, p.scores, "evaluated rows"
        findings.append(Finding(check="threshold", severity="warning",
                                message="the threshold was chosen on the rows it is evaluated on, so the threshold "
                                        "metrics are optimistic", fix="choose it on a validation split"))
    value = best_threshold(y, scores, params.choose_threshold)
    if rows.pred_from_scores:
        p = attrs.evolve(p, pred=(p.scores >= value).astype(p.y.dtype))
    return p, {"value": value, "method": "maximize", "metric": params.choose_threshold, "split": split}, findings


def score_baselines(params: EvaluateParams, p: Predictions, rows: Rows, threshold: float,
                    models: dict[str, Any]) -> tuple[list[BaselineScore], dict[str, str]]:
    """The dummy, the rules and the model versions (``models``: name -> ``(id, predictions)``,
    or why it could not be scored), each scored on the evaluated rows."""
    out, skipped = [], {}
    strategies = {DUMMY: None} if DUMMY not in params.baselines else {}
    strategies.update({n: s.strategy for n, s in params.baselines.items() if s.kind == "dummy"})
    for name, strategy in strategies.items():
        scored = dummy(p, strategy, rows.prior, seed=params.seed)
        reference = strategy or ("mean" if p.task == "regression" else "prior")
        out.append(BaselineScore(name=name, kind="dummy", reference=reference, metrics=compute(scored)))
    for name, spec in params.baselines.items():
        if spec.kind == "rule":
            scored = rule(spec.rule, rows.frame, p, name=name, threshold=threshold)
            out.append(BaselineScore(name=name, kind="rule", reference=spec.rule, metrics=compute(scored)))
    wanted = [n for n, s in params.baselines.items() if s.kind == "model_version"]
    for name in wanted + (["latest"] if params.baseline == "latest" else []):
        found = models.get(name, "model versions are re-scored inside a chain's evaluate stage")
        if isinstance(found, str):
            skipped[name] = found
            continue
        reference, scored = found
        out.append(BaselineScore(name=name, kind="model_version", reference=reference,
                                 metrics=compute(scored)))
    return out, skipped


def evaluate(params: EvaluateParams, p: Predictions, *, subject: Subject, rows: Rows | None = None,
             models: dict[str, Any] | None = None) -> Evaluation:
    """The whole evaluation of predictions ``p`` (see :class:`Rows` for what else is used)."""
    import numpy as np

    rows = rows or Rows()
    if params.slices:
        if rows.frame is None:
            raise DataError("slices need the raw rows: pass data= with the slice columns")
        check_columns(params.slices, rows.frame.columns)
    p, threshold, findings = choose_threshold(params, p, rows)
    rng = np.random.default_rng(params.seed)
    values = compute(p, k=params.k)
    families = plan(p)
    overall, methods = intervals(families, None, resamples=params.resamples, confidence=params.confidence,
                                 rng=rng, points=values)
    scored, skipped = score_baselines(params, p, rows, threshold.get("value", params.threshold), models or {})
    by_name = {b.name: dict(b.metrics) for b in scored}
    segment_scores, slice_methods = score_slices(params.slices, rows.frame, p, families=families, rng=rng,
                                                 resamples=params.resamples, confidence=params.confidence,
                                                 min_support=params.min_support)
    methods.update({m: u for m, u in slice_methods.items() if u != "exact" or m not in methods})
    outcomes = judge(params, task=p.task, metrics=values, baselines=by_name, skipped=skipped,
                     slices=segment_scores, has_scores=p.scores is not None)
    findings += _findings(params, outcomes, segment_scores, skipped)
    positions = rows.positions if rows.positions is not None else np.arange(p.rows)
    table, confusion = per_class(p) if p.task in ("binary", "multiclass") else ([], {})
    legacy = params.baseline if params.baseline in by_name else None
    return Evaluation(
        id=new_id("eval"), model_id=subject.model_id, feature_set_id=subject.feature_set_id, split=subject.split,
        evaluator=subject.evaluator, metrics=values, passed=all(o.passed for o in outcomes),
        baseline_id=_reference(scored, legacy), baseline_metrics=by_name.get(legacy, {}) if legacy else {},
        findings=tuple(findings), gates=params.gate_summary(), task=p.task, label=subject.label,
        source=subject.source, snapshot_id=subject.snapshot_id, threshold=threshold, intervals=overall,
        classes=tuple(str(c) for c in p.classes), per_class=tuple(table), confusion=confusion,
        curves=curves(p), calibration=calibration(p), sweep=tuple(sweep(p)),
        residuals=residuals(p), baselines=tuple(scored), slices=tuple(segment_scores),
        bootstrap={"resamples": params.resamples, "confidence": params.confidence, "seed": params.seed,
                   "min_support": params.min_support, "method": methods},
        examples=examples(p, rows=positions, ids=rows.ids, id_column=rows.id_column, count=params.examples,
                          rng=rng),
        outcomes=tuple(outcomes))


def _findings(params: EvaluateParams, outcomes, segments, skipped: dict[str, str]) -> list[Finding]:
    """A finding per failed (or skipped) rule, per low-support segment and per baseline not scored."""
    out = gate_findings(outcomes)
    out += [Finding(check="slice.support", severity="info",
                    message=f"slice {s.slice}={s.segment} has {s.support} rows, below min_support "
                            f"{params.min_support}: its metrics are noisy and it is not gated")
            for s in segments if s.low_support]
    out += [Finding(check="baseline", severity="warning", message=f"baseline '{name}' was not scored: {why}")
            for name, why in skipped.items()]
    return out


def _reference(scored: list[BaselineScore], name: str | None) -> str | None:
    match = [b for b in scored if b.name == name]
    return match[0].reference if match and match[0].kind == "model_version" else None
