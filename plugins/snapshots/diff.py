"""Comparing two snapshots: schema changes, row changes by key (a DuckDB join over the
verified Parquet parts, out of core) and summary-statistic changes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tether.errors import DataError
from tether.records import DatasetSnapshot
from tether.sql import quote_identifier as q

from .card import jsonable
from .fingerprint import canonical_type_str
from .read import verified_part_paths

if TYPE_CHECKING:  # pragma: no cover
    from tether.workspace import Workspace

#: The two sides of the join, each with a presence flag so that keys that are NULL still count.
#: The part paths are bound as parameters ($1: a's files, $2: b's), never written into the SQL.
_SIDES = ("WITH a2 AS (SELECT *, TRUE AS __in_a FROM read_parquet($1)), "
          "b2 AS (SELECT *, TRUE AS __in_b FROM read_parquet($2)) ")


def diff_snapshots(workspace: Workspace, a: DatasetSnapshot, b: DatasetSnapshot, *, key: Iterable[str] = (),
                   samples: int = 5) -> dict[str, Any]:
    """Schema, row (by key) and summary-statistic changes from ``a`` to ``b``."""
    cols_a = {c.name: c.type for c in a.columns}
    cols_b = {c.name: c.type for c in b.columns}
    result: dict[str, Any] = {
        "a": {"id": a.id, "name": a.name, "version": a.version, "rows": a.num_rows},
        "b": {"id": b.id, "name": b.name, "version": b.version, "rows": b.num_rows},
        "identical": a.fingerprint == b.fingerprint,
        "schema": _schema_changes(cols_a, cols_b),
        "statistics": _stat_changes(a, b),
    }
    key = tuple(key) or b.key_columns or a.key_columns
    if not key:
        result["rows"] = {"key": [], "note": "no key declared; give --key to compare rows"}
        return result
    missing = [k for k in key if k not in cols_a or k not in cols_b]
    if missing:
        raise DataError(f"diff: key column '{missing[0]}' is not in both snapshots")
    result["rows"] = _row_changes(workspace, a, b, key, samples, cols_a, cols_b)
    return result


def _schema_changes(cols_a: dict[str, str], cols_b: dict[str, str]) -> dict[str, list]:
    return {
        "added": [{"column": n, "type": t} for n, t in cols_b.items() if n not in cols_a],
        "removed": [{"column": n, "type": t} for n, t in cols_a.items() if n not in cols_b],
        "retyped": [{"column": n, "from": cols_a[n], "to": cols_b[n]} for n in cols_b
                    if n in cols_a and canonical_type_str(cols_a[n]) != canonical_type_str(cols_b[n])],
    }


def _stat_changes(a: DatasetSnapshot, b: DatasetSnapshot) -> list[dict[str, Any]]:
    sa = {c.name: c for c in a.card.columns}
    out = []
    for cb in b.card.columns:
        ca = sa.get(cb.name)
        if ca is None:
            continue
        changes = {}
        for field in ("missing_share", "min", "max", "mean", "distinct"):
            va, vb = getattr(ca, field), getattr(cb, field)
            if va != vb:
                changes[field] = {"from": va, "to": vb}
        if tuple(ca.top) != tuple(cb.top):
            changes["top"] = {"from": [list(t) for t in ca.top], "to": [list(t) for t in cb.top]}
        if changes or (ca.fingerprint and ca.fingerprint != cb.fingerprint):
            out.append({"column": cb.name, "values_changed": bool(ca.fingerprint != cb.fingerprint), **changes})
    return out


def _row_changes(workspace, a, b, key, samples, cols_a, cols_b) -> dict[str, Any]:
    import duckdb

    paths = {"a": [str(p) for p in verified_part_paths(workspace, a)],
             "b": [str(p) for p in verified_part_paths(workspace, b)]}
    shared = [n for n in cols_b if n in cols_a and n not in key]
    keys = ", ".join(q(k) for k in key)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        for side, snap in (("a", a), ("b", b)):
            _check_unique(con, paths[side], key, snap)
        differs = [_differs(c, cols_a, cols_b) for c in shared]
        per_col = "".join(f', {d} AS "__d{i}"' for i, d in enumerate(differs))
        con.execute(f"""CREATE TEMP TABLE j AS {_SIDES} SELECT
                            {', '.join(f'COALESCE(a2.{q(k)}, b2.{q(k)}) AS {q(k)}' for k in key)},
                            a2.__in_a IS NOT NULL AS in_a, b2.__in_b IS NOT NULL AS in_b,
                            ({' OR '.join(differs) or 'FALSE'}) AS changed {per_col}
                        FROM a2 FULL OUTER JOIN b2
                        ON {' AND '.join(f'a2.{q(k)} IS NOT DISTINCT FROM b2.{q(k)}' for k in key)}""",
                    [paths["a"], paths["b"]])
        added, removed, changed = con.execute(
            "SELECT COUNT(*) FILTER (WHERE in_b AND NOT in_a), COUNT(*) FILTER (WHERE in_a AND NOT in_b), "
            "COUNT(*) FILTER (WHERE in_a AND in_b AND changed) FROM j").fetchone()

        def sample(where: str) -> list[dict[str, Any]]:
            rows = con.execute(f"SELECT {keys} FROM j WHERE {where} ORDER BY {keys} LIMIT {int(samples)}").fetchall()
            return [{k: jsonable(v) for k, v in zip(key, row)} for row in rows]

        return {
            "key": list(key), "added": int(added), "removed": int(removed), "changed": int(changed),
            "changed_by_column": _changed_by_column(con, shared),
            "samples": {"added": sample("in_b AND NOT in_a"), "removed": sample("in_a AND NOT in_b"),
                        "changed": sample("in_a AND in_b AND changed")},
        }
    finally:
        con.close()


def _check_unique(con, paths: list[str], key, snap: DatasetSnapshot) -> None:
    keys = ", ".join(q(k) for k in key)
    dup = con.execute(f"SELECT {keys}, COUNT(*) c FROM read_parquet($1) GROUP BY ALL HAVING c > 1 LIMIT 1",
                      [paths]).fetchone()
    if dup:
        raise DataError(f"diff: key ({', '.join(key)}) is not unique in snapshot {snap.id} "
                        f"(e.g. {dict(zip(key, dup[:-1]))} appears {dup[-1]} times); give another --key")


def _differs(c: str, cols_a: dict[str, str], cols_b: dict[str, str]) -> str:
    """SQL that is true when column ``c`` differs between the two sides of a matched row."""
    if canonical_type_str(cols_a[c]) == canonical_type_str(cols_b[c]):
        return f"(a2.{q(c)} IS DISTINCT FROM b2.{q(c)})"
    # a retyped column: compare the values' text, so e.g. 1 -> "1" is not a change
    return f"(CAST(a2.{q(c)} AS VARCHAR) IS DISTINCT FROM CAST(b2.{q(c)} AS VARCHAR))"


def _changed_by_column(con, shared: list[str]) -> dict[str, int]:
    if not shared:
        return {}
    counts = con.execute("SELECT " + ", ".join(f'COUNT(*) FILTER (WHERE in_a AND in_b AND "__d{i}")'
                                                  for i in range(len(shared))) + " FROM j").fetchone()
    return {c: int(n) for c, n in zip(shared, counts) if n}


def format_diff(report: dict[str, Any]) -> str:
    """The report as ``tether snapshots diff`` prints it."""
    a, b = report["a"], report["b"]
    lines = [f"{a['name']}@{a['version']} ({a['id']}, {a['rows']:,} rows) -> {b['name']}@{b['version']} "
             f"({b['id']}, {b['rows']:,} rows)" + ("  identical data" if report["identical"] else "")]
    schema = report["schema"]
    if not any(schema.values()):
        lines.append("schema: unchanged")
    for item in schema["added"]:
        lines.append(f"schema: + {item['column']} ({item['type']})")
    for item in schema["removed"]:
        lines.append(f"schema: - {item['column']} ({item['type']})")
    for item in schema["retyped"]:
        lines.append(f"schema: ~ {item['column']} {item['from']} -> {item['to']}")
    lines.extend(_format_rows(report["rows"]))
    for item in report["statistics"]:
        parts = [f"{k} {_shown(v['from'])} -> {_shown(v['to'])}" for k, v in item.items() if isinstance(v, dict)]
        if parts:
            lines.append(f"stats: {item['column']}: " + "; ".join(parts))
    return "\n".join(lines)


def _shown(value: Any) -> str:
    """A statistic as a person reads it: ``-`` for none, ``6`` significant digits, and
    top values as ``value (count)``."""
    if value is None or value == []:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        items = [f"{v[0]} ({v[1]:,})" if isinstance(v, (list, tuple)) and len(v) == 2 else str(v) for v in value]
        return ", ".join(items[:5]) + (", …" if len(items) > 5 else "")
    return str(value)


def _format_rows(rows: dict[str, Any]) -> list[str]:
    if rows.get("note"):
        return [f"rows: {rows['note']}"]
    lines = [(f"rows by key ({', '.join(rows['key'])}): {rows['added']:,} added, "
              f"{rows['removed']:,} removed, {rows['changed']:,} changed")]
    for kind in ("added", "removed", "changed"):
        if rows["samples"][kind]:
            lines.append(f"  {kind} e.g. " + "; ".join(", ".join(f"{k}={v}" for k, v in s.items())
                                                    for s in rows["samples"][kind]))
    if rows["changed_by_column"]:
        lines.append("  changed values per column: " + ", ".join(f"{c} {n:,}" for c, n in
                                                              rows["changed_by_column"].items()))
    return lines
