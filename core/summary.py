"""The human summary printed after ``tether run``: one aligned row per stage, in chain
order, saying whether it ran or was reused (and why), how long it took and what it made."""

from __future__ import annotations

import io
from typing import Any

#: How an evaluation's metric gates read in a stage's line.
GATE_WORDS = {"min": "min", "max": "max", "max_regression": "max drop"}
#: Metrics shown first in a stage's line, when an evaluation has them.
PREFERRED_METRICS = ("roc_auc", "average_precision", "log_loss", "accuracy", "f1", "f1_macro", "r2", "mae", "rmse")


def summarize_run(run, outputs: dict[str, Any], *, width: int = 160) -> str:
    """The run's header line and a table of its stages (rich, rendered to plain text)."""
    from rich.console import Console
    from rich.table import Table

    seconds = (run.ended_at - run.started_at).total_seconds() if run.ended_at else None
    took = f", {seconds:.1f} s" if seconds is not None else ""
    header = f"run {run.id}: {run.status} ({len(run.stages)} stages, chain {run.chain}{took})"
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for column in ("stage", "ran", "time", "output"):
        table.add_column(column, justify="right" if column == "time" else "left", no_wrap=column != "output")
    for stage in run.stages:
        record = outputs.get(stage.id)
        ran = "reused" if stage.status == "reused" else (stage.reason or stage.status)
        if stage.status == "failed":
            ran = "FAILED"
        table.add_row(stage.id, ran, _duration(stage), _describe(record) if record is not None else stage.error or "")
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, highlight=False).print(table)
    return "\n".join([header, *(line.rstrip() for line in buffer.getvalue().rstrip().splitlines())])


def _duration(stage) -> str:
    if stage.status == "reused" or not (stage.started_at and stage.ended_at):
        return "-"
    return f"{(stage.ended_at - stage.started_at).total_seconds():.2f}s"


def _describe(record) -> str:
    kind = getattr(record, "kind", None)
    if kind == "snapshot":
        return f"snapshot {record.id}  {record.name}: {record.num_rows:,} rows x {len(record.columns)} columns"
    if kind == "split":
        order = ("train", "validation", "test", "excluded")
        sizes = ", ".join(f"{k} {record.sizes[k]:,}" for k in sorted(record.sizes, key=lambda k: (
            order.index(k) if k in order else len(order), k)))
        errors = sum(f.severity == "error" for f in record.findings)
        warn = f"; {len(record.findings)} findings ({errors} errors)" if record.findings else ""
        return f"split {record.id}  {record.strategy}: {sizes}{warn}"
    if kind == "features":
        return f"features {record.id}  {len(record.feature_names)} features, transform fitted on train only"
    if kind == "model":
        return f"model {record.id}  {record.framework}.{record.estimator}"
    if kind == "evaluation":
        names = [m for m in record.gates if m in record.metrics]  # the gated metrics first
        names += [m for m in PREFERRED_METRICS if m in record.metrics and m not in names]
        names += sorted(m for m in record.metrics if m not in names and m != "rows")
        parts = []
        for name, value in [(m, record.metrics[m]) for m in names[:3]]:
            base = record.baseline_metrics.get(name)
            gates = record.gates.get(name, {})
            gate = ", ".join(f"{GATE_WORDS.get(k, k)} {v:g}" for k, v in gates.items())
            parts.append(f"{name} {value:.4f}" + (f" ({gate})" if gate else "")
                         + (f" (baseline {base:.4f})" if base is not None else ""))
        verdict = "passed" if record.passed else "FAILED gates"
        failed = [o for o in getattr(record, "outcomes", ()) if not o.passed]
        if failed:  # name what failed: the first rule's message, and how many more
            verdict += f": {failed[0].message}" + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")
        suffix = "" if record.baseline_id else "; no baseline yet"
        slices = getattr(record, "slices", ())
        if slices:
            suffix += f"; {len(slices)} slice segments"
        return f"evaluation {record.id}  {', '.join(parts)}; {verdict}" + suffix
    if kind == "model_version":
        return f"registered {record.name} v{record.version} ({record.id})"
    if kind == "deployment":
        if "rows" not in record.details:  # a serving rollout: where, how and at what weight
            return (f"deployment {record.id}  {record.strategy or record.target} in '{record.environment}': "
                    f"{record.state or record.status}, weight {record.weight:g}%")
        return (f"deployment {record.id}  {record.target}: {record.details['rows']:,} predictions "
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
