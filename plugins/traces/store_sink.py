"""The ``store`` trace sink (the default): traces in the workspace's metadata store.

On the SQL stores (SQLite, PostgreSQL) each batch is one transaction: its spans go into
the ``trace_spans`` table (:mod:`.spans_table`, created by a migration), and each trace
whose root span is in the batch becomes a ``trace`` record (the summary, with lineage
edges from the config records its spans name). A span arriving after its trace was
written (a background task outliving its request) updates the record. Traces whose root
never arrived are written as ``complete: false`` when the sink closes.

On any other metadata store the spans live inside the ``trace`` record: the sink holds a
trace's spans until its root arrives (at most ``max_pending_traces`` traces; beyond
that, the oldest are written as they are).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import attrs
from tether.backends import TraceSink
from tether.validators import at_least

from .assemble import build_trace, merge_spans
from .spans_table import spans_in, supports, upsert

#: trace ids remembered as written by this sink (to update them when a late span comes)
REMEMBERED = 10_000


@attrs.define(kw_only=True)
class StoreSink(TraceSink):
    """Traces as ``trace`` records (and ``trace_spans`` rows) in the workspace's store."""

    name: ClassVar[str] = "store"
    workspace: str = ".tether"
    max_pending_traces: int = attrs.field(default=10_000, validator=at_least(1))
    _host: Any = attrs.field(default=None, init=False, repr=False)
    _ws: Any = attrs.field(default=None, init=False, repr=False)
    _pending: dict = attrs.field(factory=dict, init=False, repr=False)  # record-only stores
    _open: OrderedDict = attrs.field(factory=OrderedDict, init=False, repr=False)  # SQL: traces without root yet
    _written: OrderedDict = attrs.field(factory=OrderedDict, init=False, repr=False)
    _known: dict = attrs.field(factory=dict, init=False, repr=False)  # record id -> exists

    def open(self, *, host: Any = None) -> None:
        self._host = host

    def _store(self) -> Any:
        if self._ws is None:  # opened in the writer thread: SQLite connections stay in their thread
            from tether.manager import PluginHost
            from tether.workspace import Workspace

            self._ws = Workspace.open(self._host or PluginHost(entry_points=False), self.workspace)
        return self._ws.store

    def write(self, spans: list[dict[str, Any]]) -> None:
        store = self._store()
        if supports(store):
            self._write_sql(store, spans)
        else:
            self._write_records(store, spans)

    # -- SQL stores: a spans table plus one record per trace ---------------------------------

    def _write_sql(self, store: Any, spans: list[dict[str, Any]], finish: tuple[str, ...] = ()) -> None:
        batch: dict[str, list[dict[str, Any]]] = {}
        for span in spans:
            batch.setdefault(span["trace_id"], []).append(span)
        roots = {s["trace_id"] for s in spans if not s.get("parent_id")}
        due = roots | {t for t in batch if t in self._written} | set(finish)
        with store.sql_transaction() as db:
            upsert(db, spans)
            for trace_id in sorted(due):
                earlier = trace_id in self._open or trace_id in self._written or trace_id in finish
                group = spans_in(db, trace_id) if earlier else batch[trace_id]
                if not group:
                    continue
                rec, parents = build_trace(group, known=lambda i: self._exists(db, i))
                rec = attrs.evolve(rec, spans=(), span_count=len(group))
                store._insert(db.conn, rec, parents=parents, replace=True)
        for trace_id in batch.keys() - due:
            self._open[trace_id] = None
        for trace_id in due:
            self._open.pop(trace_id, None)
            self._written[trace_id] = None
        for table in (self._open, self._written):
            while len(table) > REMEMBERED:
                table.popitem(last=False)

    def _exists(self, db: Any, record_id: str) -> bool:
        if record_id not in self._known:
            if len(self._known) > REMEMBERED:
                self._known.clear()
            found = db.execute("SELECT 1 FROM {records} WHERE id = ?", (record_id,)).fetchone()
            self._known[record_id] = found is not None
        return self._known[record_id]

    # -- other stores: the spans inside the record -------------------------------------------

    def _write_records(self, store: Any, spans: list[dict[str, Any]]) -> None:
        pending = self._pending
        for span in spans:
            pending.setdefault(span["trace_id"], []).append(span)
        done = [tid for tid, group in pending.items() if any(not s.get("parent_id") for s in group)]
        while len(pending) - len(done) > self.max_pending_traces:
            done.append(next(tid for tid in pending if tid not in done))
        for tid in done:
            self._put(store, pending.pop(tid))

    def _put(self, store: Any, spans: list[dict[str, Any]]) -> None:
        existing = store.get(spans[0]["trace_id"], kind="trace")
        if existing is not None:
            spans = merge_spans(existing.spans, spans)
        rec, parents = build_trace(spans, known=lambda i: store.get(i) is not None)
        store.put(attrs.evolve(rec, span_count=len(spans)), parents=parents, replace=existing is not None)

    def close(self) -> None:
        try:
            if self._open:
                self._write_sql(self._store(), [], finish=tuple(self._open))
            for tid in list(self._pending):
                self._put(self._store(), self._pending.pop(tid))
        finally:
            if self._ws is not None:
                self._ws.close()
                self._ws = None

    def describe(self) -> str:
        return f"store:{self.workspace}"
