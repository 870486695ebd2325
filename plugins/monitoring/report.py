"""Monitor reports: plot data, the self-contained HTML page and the terminal table.

The HTML page is built by :mod:`tether.plugins.reports` from ``templates/monitor_report.html``:
per-column distribution charts, the drift and health tables, the alert list, the model
section and the trend across windows, drawn offline by Plotly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .sketches import NumericSketch


def plot_data(reference, current, *, bins: int = 20, top: int = 15) -> list[dict[str, Any]]:
    """Per shared column: shares of reference and current in equal-width bins (numeric) or
    the most frequent categories."""
    import numpy as np

    out = []
    for name, ref in reference.columns.items():
        cur = current.columns.get(name)
        if cur is None or ref.kind != cur.kind or not ref.count or not cur.count:
            continue
        if isinstance(ref, NumericSketch):
            lo, hi = min(ref.values[0], cur.values[0]), max(ref.values[-1], cur.values[-1])
            edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
            r = np.diff(np.concatenate((ref.cdf_at(edges[:-1], side="left"), [ref.count]))) / ref.count
            c = np.diff(np.concatenate((cur.cdf_at(edges[:-1], side="left"), [cur.count]))) / cur.count
            labels = [f"{e:.4g}" for e in edges[:-1]] + [f"{edges[-1]:.4g}"]  # bin starts, then the end
        else:
            merged: dict[str, int] = {}
            for k, v in list(ref.counts.items()) + list(cur.counts.items()):
                merged[k] = merged.get(k, 0) + v
            labels = sorted(merged, key=lambda k: -merged[k])[:top]
            r = np.array([ref.counts.get(k, 0) for k in labels]) / ref.count
            c = np.array([cur.counts.get(k, 0) for k in labels]) / cur.count
        out.append({"column": name, "labels": labels, "reference": [round(float(x), 6) for x in r],
                    "current": [round(float(x), 6) for x in c]})
    return out


def report_data(report) -> dict[str, Any]:
    from tether import serde

    data = serde.to_dict(report)["data"]
    d = report.details
    return {"verdict": report.verdict, "reference": d.get("reference_label") or report.reference_id,
            "current": d.get("current_label") or report.current_id, "reference_rows": d.get("reference_rows"),
            "current_rows": d.get("current_rows"), "created_at": data["created_at"],
            "drifted": d.get("drifted_columns", []), "columns": len({r.column for r in report.results}),
            "results": data["results"], "findings": data["findings"], "alerts": data["alerts"],
            "plots": d.get("plots", []), "model": d.get("model", {}), "windows": d.get("windows", [])}


def _finite(value):
    """NaN/inf -> None, so the embedded JSON is valid."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _metric_rows(model: dict[str, Any]) -> list[list[Any]]:
    from tether.plugins.reports.pages import num

    estimated = model.get("estimated") or {}
    labelled = (model.get("labelled") or {}).get("overall") or {}
    reference = model.get("reference_metrics") or {}
    return [[m, num(estimated.get(m)), num(labelled.get(m)), num(reference.get(m))]
            for m in sorted(set(estimated) | set(labelled))]


def _figures(data: dict[str, Any]) -> dict[str, Any]:
    """The page's charts: one per plotted column, class rates, the trend across windows."""
    from tether.plugins.reports import charts

    figures = {}
    for i, p in enumerate(data["plots"]):
        p["figure"] = f"dist-{i}"
        labels: list[Any] = p["labels"]
        layout: dict[str, Any] = {}
        if len(labels) == len(p["current"]) + 1:  # numeric: bin edges -> bars at the bin centres
            edges = [float(e) for e in labels]
            labels = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
            layout = {"bargap": 0.05}
        figures[p["figure"]] = charts.bars(labels, {"reference": p["reference"], "current": p["current"]},
                                           title=p["column"], y="share", height=240,
                                           colors={"reference": charts.REFERENCE, "current": charts.CURRENT}, **layout)
    model = data["model"] or {}
    if model.get("class_rates_current"):
        rates = {"reference": model.get("class_rates_reference") or {}, "current": model["class_rates_current"]}
        classes = sorted(set(rates["current"]) | set(rates["reference"]))
        figures["class_rates"] = charts.bars(classes, {k: [v.get(c, 0.0) for c in classes] for k, v in rates.items()
                                                       if v}, x="class", y="share", height=260,
                                             colors={"reference": charts.REFERENCE, "current": charts.CURRENT})
    if data["windows"]:
        figures["trend"] = charts.lines({"drift share": ([w["window"] for w in data["windows"]],
                                                         [w["drift_share"] for w in data["windows"]])},
                                        x="window", y="share of drifted columns", markers=True, height=280,
                                        yaxis={"range": [0, 1.05], "tickformat": ".0%"}, xaxis={"type": "category"},
                                        showlegend=False)
    return figures


def html_page(report) -> str:
    """The report as one self-contained HTML page."""
    from tether.plugins.reports import render_page

    data = _finite(report_data(report))
    figures = _figures(data)
    windows = [[w["window"], w["rows"], f"{w['drift_share']:.0%}", ", ".join(w["drifted"]) or "-"]
               for w in data["windows"]]
    return render_page("monitor_report.html", package=__package__, title="tether monitor report", figures=figures,
                       findings_rows=[[f["severity"], f["check"], f["message"]] for f in data["findings"]],
                       findings_classes=[f"finding {f['severity']}" for f in data["findings"]],
                       model_rows=_metric_rows(data["model"] or {}), windows_rows=windows,
                       model_json=json.dumps(data["model"], indent=1, sort_keys=True, default=str), **data)


def write_html(report, path: Path) -> Path:
    """Write the report's HTML page to ``path`` (atomically)."""
    from tether.plugins.reports import write_page

    return write_page(path, html_page(report))


def _table(title: str, headers: list[str], rows: list[list[Any]], right: tuple[int, ...] = ()):
    """A rich table without vertical rules; cells are plain text (never markup)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i in right else "left", overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return table


def _num(value, fmt: str = ".4g") -> str:
    return "" if value is None else format(value, fmt)


def report_tables(report) -> list:
    """The report as rich renderables: results, findings, alerts, windows, model."""
    out = []
    if report.results:
        out.append(_table("drift", ["column", "test", "statistic", "p-value", "threshold", "drift"], [
            [r.column, r.test, _num(r.statistic), _num(r.p_value, ".3g"), f"{r.threshold:g} {r.threshold_type}",
             "DRIFT" if r.drifted else "ok"] for r in report.results], right=(2, 3, 4)))
    if report.findings:
        out.append(_table("findings", ["severity", "check", "message"],
                          [[f.severity, f.check, f.message] for f in report.findings]))
    if report.alerts:
        out.append(_table("alerts", ["severity", "rule", "message", "action", "sent"], [
            [a["severity"], a["rule"], a["message"], a["action"], "suppressed" if a["suppressed"] else "yes"]
            for a in report.alerts]))
    windows = report.details.get("windows") or []
    if windows:
        out.append(_table("windows", ["window", "rows", "drift share", "drifted columns"], [
            [w["window"], w["rows"], f"{w['drift_share']:.0%}", ", ".join(w["drifted"]) or "-"] for w in windows],
            right=(1, 2)))
    model = report.details.get("model") or {}
    metrics = sorted(set(model.get("estimated") or {}) | set((model.get("labelled") or {}).get("overall") or {}))
    if metrics:
        labelled = (model.get("labelled") or {}).get("overall") or {}
        out.append(_table("model", ["metric", "estimated", "labelled", "reference"], [
            [m, _num((model.get("estimated") or {}).get(m)), _num(labelled.get(m)),
             _num((model.get("reference_metrics") or {}).get(m))] for m in metrics], right=(1, 2, 3)))
    return out


def headline(report) -> str:
    d = report.details
    return (f"verdict: {report.verdict.upper()}  ({d.get('current_rows')} current rows vs "
            f"{d.get('reference_rows')} reference rows)")


def print_report(report, file=None) -> None:
    """Print the report as aligned tables (to stdout, or ``file``)."""
    import sys

    from rich.console import Console

    out = file or sys.stdout
    console = Console(file=out, highlight=False, soft_wrap=False,
                      width=None if out.isatty() else 160)
    console.print(headline(report), markup=False)
    for table in report_tables(report):
        console.print()
        console.print(table)


def text_table(report) -> str:
    """The report as plain text (what :func:`print_report` prints, without colour)."""
    import io

    buffer = io.StringIO()
    print_report(report, file=buffer)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
