"""Signals: a report's results as flat name -> number, what alert rules and triggers read."""

from __future__ import annotations

from typing import Any


def signals_of(results, findings, rows: int, health_metrics: dict[str, Any],
               model_section: dict[str, Any]) -> dict[str, float]:
    """``rows``, ``drift.*``, ``health.*``, ``volume_ratio``, ``freshness_lag_hours`` and the
    model signals (see docs/monitoring.md, *Alerts*)."""
    per_column = [r for r in results if r.column != "*"]
    columns = {r.column for r in per_column}
    drifted = {r.column for r in per_column if r.drifted}
    signals: dict[str, float] = {
        "rows": float(rows),
        "drift.count": float(len(drifted)),
        "drift.share": len(drifted) / len(columns) if columns else 0.0,
        "health.errors": float(sum(f.severity == "error" for f in findings)),
        "health.warnings": float(sum(f.severity == "warning" for f in findings)),
    }
    for r in results:
        signals[f"drift.column.{r.column}"] = max(signals.get(f"drift.column.{r.column}", 0.0), float(r.drifted))
    for f in findings:
        signals[f"health.{f.check}"] = signals.get(f"health.{f.check}", 0.0) + 1
    for key in ("volume_ratio", "freshness_lag_hours"):
        if key in health_metrics:
            signals[key] = float(health_metrics[key])
    signals.update(_model_signals(model_section))
    return signals


def _model_signals(model_section: dict[str, Any]) -> dict[str, float]:
    signals: dict[str, float] = {}
    for name, value in (model_section.get("estimated") or {}).items():
        signals[f"estimated.{name}"] = value
    for name, value in ((model_section.get("labelled") or {}).get("overall") or {}).items():
        signals[f"performance.{name}"] = value
    if "class_rate_change" in model_section:
        signals["class_rate.change"] = model_section["class_rate_change"]
    if model_section.get("confidence_reference") is not None:
        signals["confidence.change"] = model_section["confidence_current"] - model_section["confidence_reference"]
    for name, value in (model_section.get("estimated_drop") or {}).items():
        signals[f"performance_drop.{name}"] = value
    return signals
