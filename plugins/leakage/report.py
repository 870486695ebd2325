"""Presenting findings: as text (CLI) and as a self-contained HTML page (built by
:mod:`tether.plugins.reports` from ``templates/leakage_report.html``)."""

from __future__ import annotations

from typing import Any

_MARKS = {"error": "FAIL", "warning": "warn"}
_ORDER = {"error": 0, "warning": 1}


def _evidence_line(evidence: dict[str, Any]) -> str | None:
    """The first of ``entities``, ``columns``, ``rows`` in the evidence, as up to 10 values."""
    for key in ("entities", "columns", "rows"):
        if evidence.get(key):
            shown = evidence[key] if not isinstance(evidence[key], dict) else list(evidence[key])
            total = evidence.get("n_" + key, len(shown))
            total = total if isinstance(total, int) else len(shown)
            more = "" if total <= 10 else f" ... ({total:,} in total)"
            return f"         {key}: {', '.join(map(str, shown[:10]))}{more}"
    return None


def format_findings(findings) -> str:
    """Findings as indented text, failing ones first, with an evidence sample and the fix."""
    if not findings:
        return "  no leakage findings"
    lines = [f"  findings ({sum(f.severity == 'error' for f in findings)} failing):"]
    for f in sorted(findings, key=lambda f: _ORDER.get(f.severity, 2)):
        lines.append(f"  [{_MARKS.get(f.severity, 'info')}] {f.check}: {f.message}")
        evidence = _evidence_line(f.evidence)
        if evidence:
            lines.append(evidence)
        if f.fix:
            lines.append(f"         fix: {f.fix}")
    return "\n".join(lines)


def _split_table(summary: dict[str, Any]) -> dict[str, Any]:
    """The per-split table (rows, time range, entities, class balance, label mean) and its charts."""
    from tether.plugins.reports import charts
    from tether.plugins.reports.pages import num, pct

    rows = summary.get("rows") or {}
    headers, numeric = ["split", "rows"], [1]
    table = [[name, num(n)] for name, n in rows.items()]
    columns = [("time_range", ["from", "to"], lambda v: [str(v[0]), str(v[1])]),
               ("entities", ["entities"], lambda v: [num(v)]),
               ("class_balance", ["class balance"],
                lambda v: [", ".join(f"{k}: {pct(x)}" for k, x in v.items())]),
               ("label_mean", ["label mean"], lambda v: [num(v)])]
    for key, names, cells in columns:
        if isinstance(summary.get(key), dict):
            if key in ("entities", "label_mean"):
                numeric.append(len(headers))
            headers += names
            for row, name in zip(table, rows):
                value = summary[key].get(name)
                row += cells(value) if value is not None else [""] * len(names)
    figures = {}
    if len(rows) > 1:
        figures["rows"] = charts.bars(list(rows), {"rows": list(rows.values())}, y="rows", height=260,
                                      showlegend=False)
    balance = summary.get("class_balance")
    if isinstance(balance, dict) and balance:
        classes = sorted({str(c) for shares in balance.values() for c in shares})
        figures["class_balance"] = charts.bars(classes, {split: [shares.get(c, 0.0) for c in classes]
                                                         for split, shares in balance.items()},
                                               x="class", y="share", height=260)
    handled = {"rows"} | {key for key, _, _ in columns}
    other = {k: v for k, v in summary.items() if k not in handled}
    return {"rows": list(rows.items()), "split_headers": headers, "split_rows": table if rows else [],
            "split_numeric": tuple(numeric), "figures": figures, "other": other}


def findings_html(findings, *, title: str, summary: dict[str, Any] | None = None) -> str:
    """A self-contained HTML page of findings (failing ones first) and an optional per-split
    summary with its charts."""
    import json

    from tether.plugins.reports import render_page

    split = _split_table(summary or {})
    shown = [{"severity": f.severity, "check": f.check, "message": f.message, "fix": f.fix,
              "evidence": json.dumps(f.evidence, indent=1, default=str)[:4000]}
             for f in sorted(findings, key=lambda f: _ORDER.get(f.severity, 2))]
    return render_page("leakage_report.html", package=__package__, title=title, figures=split["figures"],
                       findings=shown, failing=sum(f.severity == "error" for f in findings), rows=split["rows"],
                       split_headers=split["split_headers"], split_rows=split["split_rows"],
                       split_numeric=split["split_numeric"], has_rows_chart="rows" in split["figures"],
                       has_balance_chart="class_balance" in split["figures"],
                       other_summary=json.dumps(split["other"], indent=2, default=str) if split["other"] else "")
