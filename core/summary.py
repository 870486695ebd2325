"""The short human summary printed after ``tether run``."""

from __future__ import annotations

from typing import Any


def summarize_run(run, outputs: dict[str, Any]) -> str:
    lines = [f"run {run.id}: {run.status} ({len(run.stages)} stages, chain {run.chain})"]
    for stage in run.stages:
        record = outputs.get(stage.id)
        reused = " (reused)" if stage.status == "reused" else ""
        lines.append(f"  {stage.id:<12} {_describe(record)}{reused}")
    return "\n".join(lines)


def _describe(record) -> str:
    kind = getattr(record, "kind", None)
    if kind == "snapshot":
        return f"snapshot {record.id}  {record.name}: {record.num_rows:,} rows x {len(record.columns)} columns"
    if kind == "split":
        sizes = ", ".join(f"{k} {v:,}" for k, v in record.sizes.items())
        errors = sum(f.severity == "error" for f in record.findings)
        warn = f"; {len(record.findings)} findings ({errors} errors)" if record.findings else ""
        return f"split {record.id}  {record.strategy}: {sizes}{warn}"
    if kind == "features":
        return f"features {record.id}  {len(record.feature_names)} features, transform fitted on train only"
    if kind == "model":
        return f"model {record.id}  {record.framework}.{record.estimator}"
    if kind == "evaluation":
        shown = {k: v for k, v in record.metrics.items() if k != "rows"}
        parts = []
        for name, value in list(shown.items())[:3]:
            base = record.baseline_metrics.get(name)
            parts.append(f"{name} {value:.4f}" + (f" (baseline {base:.4f})" if base is not None else ""))
        verdict = "passed" if record.passed else "FAILED gates"
        suffix = "" if record.baseline_id else "; no baseline yet"
        return f"evaluation {record.id}  {', '.join(parts)}; {verdict}" + suffix
    if kind == "model_version":
        return f"registered {record.name} v{record.version} ({record.id})"
    if kind == "deployment":
        return (f"deployment {record.id}  {record.target}: {record.details.get('rows', '?'):,} predictions "
                f"at {_relative(record.location)}")
    if kind == "monitor_report":
        drifted = [r.column for r in record.results if r.drifted]
        parts = [f"monitor {record.id}  verdict {record.verdict.upper()}"]
        if record.results:
            parts.append(f": {len(drifted)}/{len(record.results)} columns drifted"
                         f"{': ' + ', '.join(drifted[:6]) if drifted else ''}")
        model = record.details.get("model") or {}
        estimated, reference = model.get("estimated") or {}, model.get("reference_metrics") or {}
        if "roc_auc" in estimated:
            parts.append(f"; estimated roc_auc {estimated['roc_auc']:.3f}"
                         + (f" (training {reference['roc_auc']:.3f})" if "roc_auc" in reference else ""))
        fired = [a for a in record.alerts if not a.get("suppressed")]
        if fired:
            parts.append("; alerts: " + ", ".join(f"{a['rule']} ({a['severity']} -> {a['action']})" for a in fired[:4]))
        return "".join(parts)
    return f"{kind} {getattr(record, 'id', '?')}"


def _relative(location: str) -> str:
    """A path relative to the working directory when it lies below it."""
    import os

    if not location:
        return location
    relative = os.path.relpath(location)
    return location if relative.startswith("..") else relative
