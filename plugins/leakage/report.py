"""Presenting findings: as text (CLI) and as a self-contained HTML page."""

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


def findings_html(findings, *, title: str, summary: dict[str, Any] | None = None) -> str:
    """A self-contained HTML page of findings (and an optional per-split summary)."""
    import html
    import json

    rows = "".join(
        f"<tr class='{html.escape(f.severity)}'><td>{html.escape(f.severity)}</td><td>{html.escape(f.check)}</td>"
        f"<td>{html.escape(f.message)}</td><td>{html.escape(f.fix)}</td>"
        f"<td><pre>{html.escape(json.dumps(f.evidence, indent=1, default=str)[:4000])}</pre></td></tr>"
        for f in findings
    ) or "<tr><td colspan='5'>no leakage findings</td></tr>"
    extra = ""
    if summary:
        extra = f"<h2>Per split</h2><pre>{html.escape(json.dumps(summary, indent=2, default=str))}</pre>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;"
        "padding:4px;vertical-align:top}}table{{border-collapse:collapse}}tr.error{{background:#fdd}}"
        "tr.warning{{background:#ffd}}pre{{margin:0;max-height:12em;overflow:auto}}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{extra}<h2>Leakage findings</h2><table><tr><th>severity</th><th>check</th>"
        f"<th>finding</th><th>fix</th><th>evidence</th></tr>{rows}</table></body></html>"
    )
