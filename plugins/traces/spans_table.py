"""The ``trace_spans`` table of the SQL metadata stores (component ``traces``).

One row per span (``trace_id``, ``span_id`` as key; the span dict as JSON in ``body``),
created by a versioned migration. The store sink writes a batch of spans and the
``trace`` records of the traces whose root span arrived in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

COMPONENT = "traces"
COLUMNS = "trace_id, span_id, parent_id, type, name, start_ns, duration_ms, status, body"
UPSERT = {
    "sqlite": f"INSERT OR REPLACE INTO {{trace_spans}} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "postgres": (f"INSERT INTO {{trace_spans}} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (trace_id, span_id) DO UPDATE SET parent_id = EXCLUDED.parent_id, "
                 "type = EXCLUDED.type, name = EXCLUDED.name, start_ns = EXCLUDED.start_ns, "
                 "duration_ms = EXCLUDED.duration_ms, status = EXCLUDED.status, body = EXCLUDED.body"),
}


def register() -> None:
    """Register the component's migrations (idempotent; from ``tether_add_backends``)."""
    from tether.plugins.sql_migrations import Migration, register_migrations

    register_migrations(COMPONENT, [
        Migration(1, "trace spans", sql=(
            "CREATE TABLE IF NOT EXISTS {trace_spans} (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, "
            "parent_id TEXT, type TEXT NOT NULL, name TEXT, start_ns BIGINT NOT NULL, "
            "duration_ms DOUBLE PRECISION, status TEXT NOT NULL, body TEXT NOT NULL, "
            "PRIMARY KEY (trace_id, span_id))",
            "CREATE INDEX IF NOT EXISTS trace_spans_by_start ON {trace_spans} (start_ns)",
        )),
    ])


def supports(store: Any) -> bool:
    """Whether ``store`` is a SQL store with plugin tables (else spans live in the record)."""
    return all(hasattr(store, name) for name in ("sql_transaction", "sql_query", "_insert"))


def row(span: dict[str, Any]) -> tuple:
    return (span["trace_id"], span["span_id"], span.get("parent_id"), str(span.get("type")), str(span.get("name")),
            int(span.get("start_ns") or 0), span.get("duration_ms"), str(span.get("status")),
            json.dumps(span, separators=(",", ":"), ensure_ascii=False))


def upsert(db: Any, spans: Iterable[dict[str, Any]]) -> None:
    db.executemany(UPSERT[db.dialect], [row(s) for s in spans])


def spans_in(db: Any, trace_id: str) -> list[dict[str, Any]]:
    """Every span of ``trace_id`` (inside a transaction)."""
    rows = db.execute("SELECT body FROM {trace_spans} WHERE trace_id = ? ORDER BY start_ns", (trace_id,)).fetchall()
    return [json.loads(body) for (body,) in rows]


def spans_of(store: Any, trace_ids: list[str], chunk: int = 500) -> dict[str, list[dict[str, Any]]]:
    """The spans of each trace id (a read; ids without spans are absent)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(trace_ids), chunk):
        ids = trace_ids[start:start + chunk]
        marks = ", ".join("?" for _ in ids)
        for (body,) in store.sql_query(f"SELECT body FROM {{trace_spans}} WHERE trace_id IN ({marks}) "
                                       "ORDER BY start_ns", ids):
            span = json.loads(body)
            out.setdefault(span["trace_id"], []).append(span)
    return out


def with_spans(store: Any, traces: list[Any]) -> list[Any]:
    """``traces`` with their spans read from the table where the record holds none."""
    import attrs

    missing = [t.id for t in traces if not t.spans]
    if not missing or store is None or not supports(store):
        return traces
    found = spans_of(store, missing)
    return [attrs.evolve(t, spans=tuple(found.get(t.id, ()))) if not t.spans else t for t in traces]
