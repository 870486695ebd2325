"""Monitor reports: plot data, the self-contained HTML page and the terminal table.

The HTML report is one file with no external resources: the report's data is embedded
as JSON and a small inline script draws per-column distribution plots (SVG), the health
table, the alert list and the trend across windows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .sketches import NumericSketch

TEMPLATE = Path(__file__).parent / "templates" / "monitor_report.html"


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


def write_html(report, path: Path) -> Path:
    payload = json.dumps(_finite(report_data(report)), default=str, allow_nan=False)
    payload = payload.replace("</", "<\\/")
    html = TEMPLATE.read_text(encoding="utf-8").replace("/*DATA*/", payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def text_table(report) -> str:
    """The per-column results and alerts as plain text."""
    head = (f"verdict: {report.verdict}  ({report.details.get('current_rows')} current rows vs "
            f"{report.details.get('reference_rows')} reference rows)")
    lines = [head]
    lines.append(f"{'column':<24} {'test':<18} {'statistic':>12} {'p-value':>10} {'threshold':>18}  drift")
    for r in report.results:
        p = "" if r.p_value is None else f"{r.p_value:.3g}"
        lines.append(f"{r.column:<24} {r.test:<18} {r.statistic:>12.4g} {p:>10} "
                     f"{f'{r.threshold:g} {r.threshold_type}':>18}  {'DRIFT' if r.drifted else 'ok'}")
    for f in report.findings:
        lines.append(f"[{f.severity}] {f.check}: {f.message}")
    for a in report.alerts:
        lines.append(f"alert {a['severity']}: {a['rule']}: {a['message']} -> {a['action']}"
                     f"{' (suppressed)' if a['suppressed'] else ''}")
    return "\n".join(lines)
