"""Presenting split manifests: the text of ``tether splits ls|show`` and the HTML report."""

from __future__ import annotations

from tether.plugins.rows import label_order


def write_html(manifest, path) -> None:
    """Write the HTML report of a manifest: per-split summary and leakage findings."""
    from pathlib import Path

    from tether.plugins.leakage.report import findings_html

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"Split {manifest.id} ({manifest.strategy}) of {manifest.snapshot_id}"
    path.write_text(findings_html(manifest.findings, title=title, summary=manifest.summary), encoding="utf-8")


def manifest_line(manifest) -> str:
    """One line of ``tether splits ls``: id, strategy, sizes and finding counts."""
    errors = sum(f.severity == "error" for f in manifest.findings)
    sizes = ", ".join(f"{k} {manifest.sizes[k]:,}" for k in sorted(manifest.sizes, key=label_order))
    return f"{manifest.id}  {manifest.strategy:<16} {sizes}  {len(manifest.findings)} findings ({errors} failing)"


def _split_line(summary: dict, name: str, rows: int) -> str:
    parts = [f"{rows:,} rows"]
    if "time_range" in summary:
        lo, hi = summary["time_range"][name]
        parts.append(f"{lo} .. {hi}")
    if "entities" in summary:
        parts.append(f"{summary['entities'][name]:,} entities")
    if "class_balance" in summary:
        parts.append("classes " + ", ".join(f"{k}: {v:.1%}" for k, v in summary["class_balance"][name].items()))
    if "label_mean" in summary:
        parts.append(f"label mean {summary['label_mean'][name]:.4g}")
    return f"  {name:<10} " + "; ".join(parts)


def describe_manifest(manifest) -> str:
    """The text of ``tether splits show``: strategy, per-split summary, findings."""
    from tether.plugins.leakage.report import format_findings

    lines = [f"split {manifest.id} of snapshot {manifest.snapshot_id}"]
    params = {k: v for k, v in manifest.params.items() if v not in (None, "", (), []) and k != "label_definition"}
    lines.append(f"  strategy {manifest.strategy}: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
    if manifest.label_definition:
        lines.append(f"  label definition: {manifest.label_definition}")
    rows_by_split = manifest.summary.get("rows", manifest.sizes)
    for name in sorted(rows_by_split, key=label_order):
        lines.append(_split_line(manifest.summary, name, rows_by_split[name]))
    lines.append(format_findings(manifest.findings))
    return "\n".join(lines)
