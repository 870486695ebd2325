"""The evaluation page: an ``Evaluation`` record's JSON form as one self-contained HTML page.

Sections, each left out when the record has nothing for it (an old record has only
metrics and gates; a regression has no ROC curve): metrics against baselines, gate
outcomes, ROC / precision-recall / calibration / threshold-sweep charts, the confusion
matrix and per-class table, regression residuals, slices with confidence intervals and
low-support flags, error examples, findings and lineage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .charts import heatmap, interval_dots, lines
from .pages import num, render_page

LOWER_IS_BETTER = frozenset({"log_loss", "brier", "mae", "rmse", "mape", "median_ae"})
# The metrics a slice chart and the slice table show first, per task.
HEADLINE = {
    "binary": ("roc_auc", "average_precision", "f1", "recall", "precision", "accuracy"),
    "multiclass": ("f1_macro", "accuracy", "balanced_accuracy", "roc_auc"),
    "regression": ("mae", "rmse", "r2", "mape"),
    "ranking": ("ndcg@10", "mrr", "hit_rate@10"),
}
SLICE_METRICS = 4


def _unwrap(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """Accept the record's data or its serde envelope (``{"kind", "schema_version", "data"}``)."""
    if "data" in evaluation and "kind" in evaluation:
        if evaluation["kind"] != "evaluation":
            raise ValueError(f"not an evaluation record: kind '{evaluation['kind']}'")
        return dict(evaluation["data"])
    return dict(evaluation)


def _headline(task: str, metrics: Mapping[str, Any]) -> list[str]:
    preferred = [m for m in HEADLINE.get(task, ()) if m in metrics]
    return preferred or [m for m in metrics if m != "rows"]


def _interval(iv: Any) -> str:
    return f"[{num(iv[0])}, {num(iv[1])}]" if isinstance(iv, (list, tuple)) and len(iv) == 2 else ""


def _delta(metric: str, value: Any, baseline: Any) -> tuple[str, str]:
    """``(text, css class)`` of value minus baseline; the class says better or worse."""
    if not isinstance(value, (int, float)) or not isinstance(baseline, (int, float)) or metric == "rows":
        return "", ""
    diff = value - baseline
    better = diff < 0 if metric in LOWER_IS_BETTER else diff > 0
    return f"{diff:+.4g}", ("better" if better else "worse") if diff else ""


def _metrics_table(ev: dict[str, Any]) -> dict[str, Any]:
    """Metrics with intervals, and each baseline's value and difference."""
    metrics, intervals = ev.get("metrics") or {}, ev.get("intervals") or {}
    baselines = list(ev.get("baselines") or [])
    if not baselines and ev.get("baseline_metrics"):
        baselines = [{"name": ev.get("baseline_id") or "baseline", "kind": "legacy", "reference": "",
                      "metrics": ev["baseline_metrics"]}]
    order = list(_headline(ev.get("task", ""), metrics))
    order += sorted(m for m in metrics if m not in order)
    rows = []
    for metric in order:
        cells = [{"text": metric}, {"text": num(metrics[metric])}, {"text": _interval(intervals.get(metric))}]
        for baseline in baselines:
            other = (baseline.get("metrics") or {}).get(metric)
            text, cls = _delta(metric, metrics[metric], other)
            cells += [{"text": num(other)}, {"text": text, "cls": cls}]
        rows.append(cells)
    return {"rows": rows, "baselines": [{"name": b.get("name", ""), "kind": b.get("kind", ""),
                                         "reference": b.get("reference", "")} for b in baselines]}


def _gates(ev: dict[str, Any]) -> dict[str, Any]:
    """Gate outcomes (new records) or the legacy per-metric bounds."""
    outcomes = [{"rule": o.get("rule", ""), "passed": bool(o.get("passed")), "metric": o.get("metric") or "",
                 "value": num(o.get("value")), "bound": num(o.get("bound")), "segment": o.get("segment") or "",
                 "message": o.get("message", "")} for o in ev.get("outcomes") or []]
    legacy = [[metric, num(b.get("min")), num(b.get("max")), num(b.get("max_regression"))]
              for metric, b in (ev.get("gates") or {}).items()] if not outcomes else []
    failed = [o for o in outcomes if not o["passed"]]
    return {"outcomes": failed + [o for o in outcomes if o["passed"]], "failed": len(failed), "legacy": legacy}


def _curve_figures(ev: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    metrics, curves = ev.get("metrics") or {}, ev.get("curves") or {}
    roc, pr = curves.get("roc") or {}, curves.get("pr") or {}
    if roc.get("fpr") and roc.get("tpr"):
        name = f"ROC (AUC {num(metrics['roc_auc'], 3)})" if "roc_auc" in metrics else "ROC"
        figures["roc"] = lines({name: (roc["fpr"], roc["tpr"])}, title="ROC curve", x="false positive rate",
                                      y="true positive rate", diagonal=True)
    if pr.get("precision") and pr.get("recall"):
        name = f"PR (AP {num(metrics['average_precision'], 3)})" if "average_precision" in metrics else "PR"
        figures["pr"] = lines({name: (pr["recall"], pr["precision"])}, title="Precision-recall curve",
                                     x="recall", y="precision", xaxis_range=[0, 1], yaxis_range=[0, 1.02])
    calibration = ev.get("calibration") or {}
    if calibration.get("prob_pred") and calibration.get("prob_true"):
        figures["calibration"] = lines({"model": (calibration["prob_pred"], calibration["prob_true"])},
                                              title="Calibration", x="mean predicted probability",
                                              y="observed frequency", diagonal=True, markers=True)
    sweep = ev.get("sweep") or []
    if sweep:
        xs = [row["threshold"] for row in sweep]
        series = {k: (xs, [row.get(k) for row in sweep]) for k in ("precision", "recall", "f1") if k in sweep[0]}
        figures["sweep"] = lines(series, title="Threshold sweep", x="threshold", y="metric",
                                        xaxis_range=[0, 1], yaxis_range=[0, 1.02])
        threshold = (ev.get("threshold") or {}).get("value")
        if isinstance(threshold, (int, float)):
            figures["sweep"].add_vline(x=threshold, line_dash="dot", line_color="#cf222e")
    return figures


def _classification(ev: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    confusion = ev.get("confusion") or {}
    if confusion.get("matrix") and confusion.get("labels"):
        labels = confusion["labels"]
        figures["confusion"] = heatmap(confusion["matrix"], x=labels, y=labels, title="Confusion matrix",
                                              x_title="predicted", y_title="true",
                                              height=max(300, 160 + 36 * len(labels)))
    per_class = [[str(c.get("class", "")), num(c.get("precision")), num(c.get("recall")), num(c.get("f1")),
                  num(c.get("support"))] for c in ev.get("per_class") or []]
    return {"figures": figures, "per_class": per_class}


def _residuals(ev: dict[str, Any]) -> dict[str, Any]:
    residuals = ev.get("residuals") or {}
    quantiles, absolute = residuals.get("quantiles") or {}, residuals.get("abs_quantiles") or {}
    if not quantiles and not absolute:
        return {"figures": {}, "rows": [], "bias": None}
    levels = sorted(set(quantiles) | set(absolute), key=float)
    series = {name: ([float(q) for q in levels if q in values], [values[q] for q in levels if q in values])
              for name, values in (("residual", quantiles), ("absolute residual", absolute)) if values}
    figure = lines(series, title="Residual quantiles (prediction - label)", x="quantile", y="residual",
                          markers=True)
    figure.add_hline(y=0, line_dash="dot", line_color="#999")
    rows = [[q, num(quantiles.get(q)), num(absolute.get(q))] for q in levels]
    return {"figures": {"residuals": figure}, "rows": rows, "bias": residuals.get("bias")}


def _slices(ev: dict[str, Any]) -> dict[str, Any]:
    """The slice table (headline metrics with intervals) and one interval chart per slice column."""
    slices = ev.get("slices") or []
    if not slices:
        return {"figures": {}, "rows": [], "metrics": [], "charts": [], "low": 0}
    seen: dict[str, None] = {}
    for s in slices:
        seen.update(dict.fromkeys(s.get("metrics") or {}))
    metrics = [m for m in _headline(ev.get("task", ""), seen) if m != "rows"][:SLICE_METRICS]
    rows = []
    for s in slices:
        values, intervals = s.get("metrics") or {}, s.get("intervals") or {}
        cells = [str(s.get("slice", "")), str(s.get("segment", "")), num(s.get("support"))]
        cells += [" ".join(filter(None, (num(values.get(m)), _interval(intervals.get(m))))) for m in metrics]
        rows.append({"cells": cells, "low": bool(s.get("low_support")), "slice": str(s.get("slice", ""))})
    figures, placed = {}, []
    if metrics:
        metric, overall = metrics[0], (ev.get("metrics") or {}).get(metrics[0])
        for i, column in enumerate(dict.fromkeys(str(s.get("slice", "")) for s in slices)):
            group = [s for s in slices if str(s.get("slice", "")) == column and metric in (s.get("metrics") or {})]
            if not group:
                continue
            name = f"slice-{i}"
            figures[name] = interval_dots(
                [str(s.get("segment", "")) + (" (low support)" if s.get("low_support") else "") for s in group],
                [s["metrics"][metric] for s in group], [(s.get("intervals") or {}).get(metric) for s in group],
                title=f"{metric} by {column}", x=metric, reference=overall)
            placed.append({"name": name, "slice": column, "metric": metric})
    return {"figures": figures, "rows": rows, "metrics": metrics, "charts": placed,
            "low": sum(r["low"] for r in rows)}


def _value(value: Any) -> str:
    """A label or prediction: numbers (also numbers stored as text, like ``"203.43306"``) are
    shortened, anything else is shown as it is."""
    if isinstance(value, str) and "." in value:
        try:
            return num(float(value))
        except ValueError:
            return value
    return num(value) if isinstance(value, (int, float)) else str(value if value is not None else "")


def _examples(ev: dict[str, Any]) -> dict[str, Any]:
    examples = ev.get("examples") or {}
    shown = [e for key in ("highest_loss", "correct") for e in examples.get(key) or []]
    with_id = any("id" in e for e in shown)
    with_score = any(e.get("score") is not None for e in shown)
    headers = ["row", *([examples.get("id_column") or "id"] if with_id else []), "label", "prediction",
               *(["score"] if with_score else []), examples.get("loss") or "loss"]

    def rows(key: str) -> list[list[str]]:
        return [[str(e.get("row", "")), *([str(e.get("id", ""))] if with_id else []), _value(e.get("label")),
                 _value(e.get("prediction")), *([num(e.get("score"))] if with_score else []), num(e.get("loss"))]
                for e in examples.get(key) or []]

    numeric = (0, len(headers) - 2, len(headers) - 1) if with_score else (0, len(headers) - 1)
    return {"headers": headers, "numeric": numeric, "highest_loss": rows("highest_loss"), "correct": rows("correct")}


def _facts(ev: dict[str, Any]) -> list[tuple[str, str]]:
    threshold = ev.get("threshold") or {}
    bootstrap = ev.get("bootstrap") or {}
    facts = [("task", ev.get("task") or ""), ("model", ev.get("model_id") or ""),
             ("feature set", ev.get("feature_set_id") or ""), ("split", ev.get("split") or ""),
             ("evaluator", ev.get("evaluator") or ""), ("label", ev.get("label") or ""),
             ("source", ev.get("source") or ""), ("snapshot", ev.get("snapshot_id") or ""),
             ("rows", num((ev.get("metrics") or {}).get("rows"))), ("classes", ", ".join(ev.get("classes") or ())),
             ("created", str(ev.get("created_at") or ""))]
    if threshold.get("value") is not None:
        how = threshold.get("method", "")
        if threshold.get("metric"):
            how += f" {threshold['metric']}"
        if threshold.get("split"):
            how += f" on {threshold['split']}"
        facts.append(("threshold", f"{num(threshold['value'])} ({how.strip()})"))
    if bootstrap:
        facts.append(("intervals", f"{num(bootstrap.get('confidence'))} bootstrap, "
                                   f"{num(bootstrap.get('resamples'))} resamples, seed {bootstrap.get('seed')}; "
                                   f"slices under {num(bootstrap.get('min_support'))} rows flagged"))
    return [(k, v) for k, v in facts if v]


def _lineage(ev: dict[str, Any], lineage: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """What the evaluation came from: its own references, then the caller's ``lineage``."""
    items = [("evaluation", ev.get("id") or ""), ("model", ev.get("model_id") or ""),
             ("feature set", ev.get("feature_set_id") or ""), ("snapshot", ev.get("snapshot_id") or ""),
             ("baseline", ev.get("baseline_id") or "")]
    for b in ev.get("baselines") or []:
        if b.get("kind") == "model_version":
            items.append((f"baseline {b.get('name', '')}", str(b.get("reference", ""))))
    for key, value in (lineage or {}).items():
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        items.append((str(key), text))
    return [(k, v) for k, v in items if v]


def evaluation_html(evaluation: Mapping[str, Any], *, lineage: Mapping[str, Any] | None = None,
                    title: str | None = None) -> str:
    """The evaluation page of an ``Evaluation`` record's JSON form (the record's data, or
    its ``tether.serde.to_dict`` envelope). ``lineage`` (optional) adds rows to the lineage
    section: name -> id (or any JSON-able value)."""
    ev = _unwrap(evaluation)
    title = title or f"Evaluation {ev.get('id', '')}".strip()
    classification, residuals, slices = _classification(ev), _residuals(ev), _slices(ev)
    curves = _curve_figures(ev)
    figures = {**curves, **classification["figures"], **residuals["figures"], **slices["figures"]}
    findings = [f for f in ev.get("findings") or [] if not str(f.get("check", "")).startswith("gate.")]
    return render_page(
        "evaluation.html", title=title, figures=figures, passed=bool(ev.get("passed", True)), facts=_facts(ev),
        table=_metrics_table(ev), gates=_gates(ev), curves=[n for n in ("roc", "pr", "calibration", "sweep")
                                                              if n in curves],
        brier=(ev.get("calibration") or {}).get("brier"), confusion="confusion" in figures,
        per_class=classification["per_class"], residuals=residuals, slices=slices, examples=_examples(ev),
        findings=[{"severity": str(f.get("severity", "")), "check": str(f.get("check", "")),
                   "message": str(f.get("message", ""))} for f in findings],
        lineage=_lineage(ev, lineage))
