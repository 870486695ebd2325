"""The SQL behind both metadata stores: one schema, one set of statements, two dialects.

Records are stored as their serde envelope (JSON) with indexed columns for lookups;
lineage edges live in their own table, metric series in ``metrics``. SQLite and
PostgreSQL differ only in the small substitutions a ``Dialect`` holds (placeholder,
insertion-order column, upsert form); ``SQLRecordStore`` holds the reads and writes, its
subclasses the connection. The tables are created and upgraded by the versioned
migrations of component ``store`` (``tether.plugins.sql_migrations``), applied when a
store is opened. ``put_versioned`` numbers a record and, given ``unchanged``, first
compares the latest version in the same transaction, so concurrent writers of an
identical record store it once. Given ``audit``, ``put`` and ``put_versioned`` append the
change's audit entry in the transaction that writes the record (``atomic_audit``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import attrs
from tether import audit as audit_log
from tether.backends import MetadataStore
from tether.errors import DataError, StoreError
from tether.sql import quote_identifier

from .sql_migrations import Migration, MigrationDB, register_migrations, upgrade

#: The one schema; ``{records}``/``{edges}`` are the (quoted, maybe schema-qualified)
#: tables, ``{sequence}`` the dialect's insertion-order column, if it needs one.
SCHEMA = """
CREATE TABLE IF NOT EXISTS {records} (
    {sequence}id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT,
    version INTEGER,
    run_id TEXT,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {records_kind_name} ON {records} (kind, name, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS {records_name_version} ON {records} (kind, name, version)
    WHERE version IS NOT NULL;
CREATE TABLE IF NOT EXISTS {edges} (
    parent_id TEXT NOT NULL,
    child_id TEXT NOT NULL,
    relation TEXT NOT NULL,
    run_id TEXT,
    PRIMARY KEY (parent_id, child_id, relation)
);
CREATE INDEX IF NOT EXISTS {edges_child} ON {edges} (child_id);
"""

TABLES = ("records", "edges", "metrics")
RECORD_COLUMNS = "id, kind, name, version, run_id, created_at, body"
METRIC_COLUMNS = "run_id, key, value, step, ts"


@attrs.frozen
class Dialect:
    """What differs between SQL engines in the statements tether writes."""

    name: str  # "sqlite" or "postgres", as migrations see it
    placeholder: str  # how the driver spells a bound parameter
    sequence: str  # column definition giving insertion order ("" when the engine has one built in)
    tiebreak: str  # orders records created in the same instant
    insert_ignore: str  # INSERT that keeps an existing row
    upsert: str  # INSERT that replaces an existing row (same id)


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    sequence="",
    tiebreak="rowid",
    insert_ignore="INSERT OR IGNORE INTO {table} ({cols}) VALUES ({vals})",
    upsert="INSERT OR REPLACE INTO {table} ({cols}) VALUES ({vals})",
)

POSTGRES = Dialect(
    name="postgres",
    placeholder="%s",
    sequence="seq BIGSERIAL UNIQUE,\n    ",
    tiebreak="seq",
    insert_ignore="INSERT INTO {table} ({cols}) VALUES ({vals}) ON CONFLICT DO NOTHING",
    upsert=(
        "INSERT INTO {table} ({cols}) VALUES ({vals}) ON CONFLICT (id) DO UPDATE SET "
        "kind = EXCLUDED.kind, name = EXCLUDED.name, version = EXCLUDED.version, "
        "run_id = EXCLUDED.run_id, created_at = EXCLUDED.created_at, body = EXCLUDED.body"
    ),
)


def table_names(schema: str | None = None) -> dict[str, str]:
    """``{"records": ..., "edges": ..., "metrics": ...}``: the quoted tables, qualified by
    ``schema`` if given."""
    prefix = quote_identifier(schema) + "." if schema else ""
    return {table: prefix + quote_identifier(table) for table in TABLES}


def schema_statements(dialect: Dialect, schema: str | None = None) -> list[str]:
    """The ``CREATE ... IF NOT EXISTS`` statements of the tables (in ``schema`` if given)."""
    indexes = {name: quote_identifier(name) for name in ("records_kind_name", "records_name_version", "edges_child")}
    text = SCHEMA.format(sequence=dialect.sequence, **table_names(schema), **indexes)
    return [statement.strip() for statement in text.split(";") if statement.strip()]


def record_columns(record: Any) -> tuple[str, str, str | None, int | None, str]:
    """(id, kind, name, version, created_at) of a record, as the stores index them."""
    name = getattr(record, "name", None) or getattr(record, "chain", None)
    version = getattr(record, "version", None)
    created = getattr(record, "created_at", None) or getattr(record, "started_at", None)
    return (record.id, record.kind, name, version if isinstance(version, int) else None,
            _serde().converter.unstructure(created))


def _serde():
    from tether import serde  # imported on first use: listing commands needs no converter

    return serde


# -- migrations of component "store" ---------------------------------------------------------

DIALECTS = {"sqlite": SQLITE, "postgres": POSTGRES}


def _create_records(db: MigrationDB) -> None:
    """The tables every store had before migrations existed (a no-op on such a store)."""
    for statement in schema_statements(DIALECTS[db.dialect], db.schema):
        db.conn.execute(statement)


def _create_metrics(db: MigrationDB) -> None:
    sequence = "seq BIGSERIAL, " if db.dialect == "postgres" else ""
    db.execute(f"CREATE TABLE IF NOT EXISTS {{metrics}} ({sequence}run_id TEXT NOT NULL, key TEXT NOT NULL, "
               "value DOUBLE PRECISION, step BIGINT, ts TEXT NOT NULL)")
    db.execute("CREATE INDEX IF NOT EXISTS metrics_run_key ON {metrics} (run_id, key, step)")


def _status_registered_to_experimental(db: MigrationDB) -> None:
    """Model versions written with the old single status ``registered`` now read
    ``experimental``, the first status of the registry's vocabulary."""
    rows = db.execute("SELECT id, body FROM {records} WHERE kind = 'model_version' AND body LIKE ?",
                      ('%"status":"registered"%',)).fetchall()
    changed = []
    for record_id, body in rows:
        envelope = json.loads(body)
        data = envelope.get("data") or {}
        if data.get("status") == "registered":
            data["status"] = "experimental"
            changed.append((json.dumps(envelope, sort_keys=True, separators=(",", ":")), record_id))
    db.executemany("UPDATE {records} SET body = ? WHERE id = ?", changed)


STORE_MIGRATIONS = (
    Migration(1, "records and lineage edges", run=_create_records),
    Migration(2, "metrics table", run=_create_metrics),
    Migration(3, "model version status 'registered' becomes 'experimental'", run=_status_registered_to_experimental),
)
register_migrations("store", STORE_MIGRATIONS)


def _metric_row(run_id: str, row: Any, index: int) -> tuple[str, str, float | None, int | None, str]:
    """A checked ``(run_id, key, value, step, ts)`` row; ``DataError`` names the bad field."""
    try:
        key, value, step, ts = row
    except (TypeError, ValueError):
        raise DataError(f"metrics[{index}] of run '{run_id}': expected (key, value, step, timestamp), "
                        f"got {row!r:.80}") from None
    if not isinstance(key, str) or not key:
        raise DataError(f"metrics[{index}].key of run '{run_id}': must be a non-empty string, got {key!r:.80}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy scalars and the like
        except (TypeError, ValueError):
            raise DataError(f"metrics[{index}].value ({key}) of run '{run_id}': not a number: {value!r:.80}") from None
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise DataError(f"metrics[{index}].step ({key}) of run '{run_id}': must be an integer or None, got {step!r}")
    if isinstance(ts, dt.datetime):
        ts = ts.isoformat()
    try:
        dt.datetime.fromisoformat(ts[:-1] + "+00:00" if ts.endswith("Z") else ts)
    except (TypeError, ValueError, AttributeError):
        raise DataError(f"metrics[{index}].timestamp ({key}) of run '{run_id}': not an ISO-8601 time: "
                        f"{ts!r:.80}") from None
    value = float(value)
    return run_id, key, None if math.isnan(value) else value, step, ts


class SQLRecordStore(MetadataStore):
    """Records, runs and lineage in SQL; subclasses supply the connection and ``dialect``.

    Subclasses implement ``_connection()`` (a context manager yielding an open
    connection, the store created and upgraded if needed), ``_reading()`` (the same, but
    yielding ``None`` while nothing was ever stored), ``transaction()`` (a context manager
    yielding a connection in a transaction, rolled back on error), ``_migration_lock(conn)``
    (a context manager holding the one write transaction migrations run in) and
    ``describe()``, and ``_table_schema()`` if the tables are qualified. They call
    ``_upgrade(conn)`` when they open a connection. Statements are written with ``?``
    placeholders and ``{records}``/``{edges}``/``{metrics}`` tables, always
    parameterized; ``_sql`` rewrites them for the dialect.
    """

    dialect: ClassVar[Dialect]
    atomic_audit: ClassVar[bool] = True

    def _table_schema(self) -> str | None:
        """The schema every table is qualified with (``None``: unqualified)."""
        return None

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _connection(self):  # pragma: no cover - abstract
        """A context manager yielding an open connection (the store created and upgraded)."""
        raise NotImplementedError

    def _reading(self):  # pragma: no cover - abstract
        """Like ``_connection()``, but yielding ``None`` while nothing was ever stored."""
        raise NotImplementedError

    def _migration_lock(self, conn):  # pragma: no cover - abstract
        raise NotImplementedError

    def _upgrade(self, conn) -> list[tuple[str, int]]:
        db = MigrationDB(conn, self.dialect.name, self._table_schema())
        return upgrade(db, lambda: self._migration_lock(conn), label=self.describe())

    def migrate(self) -> list[tuple[str, int]]:
        """Apply the registered migrations this store lacks (those of a component
        registered after the store was opened, say); return the ``(component, version)``
        steps applied. Opening a store already does this."""
        with self._connection() as conn:
            return self._upgrade(conn)

    def transaction(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        sql = sql.format(**table_names(self._table_schema()))
        return sql if self.dialect.placeholder == "?" else sql.replace("?", self.dialect.placeholder)

    def _execute(self, conn, sql: str, args=()):
        return conn.execute(self._sql(sql), tuple(args))

    # -- plugins' own tables ---------------------------------------------------------------

    @contextlib.contextmanager
    def sql_transaction(self) -> Iterator[MigrationDB]:
        """A write transaction for a plugin's own tables (added by its migrations): the
        ``MigrationDB`` yielded runs statements with ``?`` placeholders and ``{table}``
        names, committed together at the end, rolled back on error."""
        with self.transaction() as conn:
            yield MigrationDB(conn, self.dialect.name, self._table_schema())

    def sql_query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        """Rows of a read of a plugin's own tables (``?`` placeholders, ``{table}`` names);
        none while the store was never written."""
        with self._reading() as conn:
            if conn is None:
                return []
            return list(MigrationDB(conn, self.dialect.name, self._table_schema()).execute(sql, args).fetchall())

    # -- writing -----------------------------------------------------------------------------

    def put(self, record: Any, *, parents: Iterable[tuple[str, str]] = (), run_id: str | None = None,
            replace: bool = False, audit: Callable[[Any], audit_log.Change] | None = None) -> None:
        """Write ``record`` and its lineage edges (``(parent_id, relation)``), and the audit
        entry ``audit(record)`` if given, atomically."""
        if replace and record.kind in self.immutable_kinds:
            raise StoreError(f"{record.kind} '{record.id}' is immutable: it cannot be replaced "
                             "(record a change as a new record instead)")
        with self.transaction() as conn:
            self._insert(conn, record, parents=parents, run_id=run_id, replace=replace)
            if audit is not None:
                self._append_audit(conn, audit(record))

    def _insert(self, conn, record, *, parents=(), run_id=None, replace=False) -> None:
        rid, kind, name, version, created = record_columns(record)
        template = self.dialect.upsert if replace else self.dialect.insert_ignore
        self._execute(conn, template.format(table="{records}", cols=RECORD_COLUMNS, vals="?, ?, ?, ?, ?, ?, ?"),
                      (rid, kind, name, version, run_id, created, _serde().dumps(record)))
        edge = self.dialect.insert_ignore.format(table="{edges}", cols="parent_id, child_id, relation, run_id",
                                                 vals="?, ?, ?, ?")
        for parent, relation in parents:
            self._execute(conn, edge, (parent, rid, relation, run_id))

    def _max_version(self, conn, kind: str, name: str) -> int:
        sql = "SELECT MAX(version) FROM {records} WHERE kind = ? AND name = ?"
        return self._execute(conn, sql, (kind, name)).fetchone()[0] or 0

    def put_versioned(self, build: Callable[[int], Any], *, kind: str, name: str,
                      parents: Iterable[tuple[str, str]] = (), run_id: str | None = None,
                      unchanged: Callable[[Any], bool] | None = None,
                      audit: Callable[[Any], audit_log.Change] | None = None) -> Any:
        """Allocate the next version of ``name`` and write ``build(version)`` in one transaction.

        With ``unchanged``, the latest stored version is read in that same transaction (after
        the version lock) and, if ``unchanged(latest)`` is true, returned with nothing
        written: concurrent writers of one record then store it once. With ``audit``, the
        entry ``audit(record)`` is appended to the audit log in that transaction too.
        """
        with self.transaction() as conn:
            top = self._max_version(conn, kind, name)
            if unchanged is not None and top:
                latest = self._version(conn, kind, name, top)
                if latest is not None and unchanged(latest):
                    return latest
            record = build(top + 1)
            self._insert(conn, record, parents=parents, run_id=run_id)
            if audit is not None:
                self._append_audit(conn, audit(record))
        return record

    def _append_audit(self, conn, change: audit_log.Change) -> None:
        """The next audit entry, chained to the latest one read under the log's version lock
        in this transaction (always taken after the record's own, so writers cannot deadlock)."""
        top = self._max_version(conn, audit_log.KIND, audit_log.LOG)
        previous = self._version(conn, audit_log.KIND, audit_log.LOG, top) if top else None
        self._insert(conn, audit_log.next_entry(change, top + 1, previous))

    def _version(self, conn, kind: str, name: str, version: int) -> Any:
        sql = "SELECT body FROM {records} WHERE kind = ? AND name = ? AND version = ?"
        row = self._execute(conn, sql, (kind, name, version)).fetchone()
        return _serde().loads(row[0]) if row else None

    # -- reading -----------------------------------------------------------------------------

    def _query(self, sql: str, args=()) -> list[tuple]:
        with self._reading() as conn:
            if conn is None:
                return []
            return list(self._execute(conn, sql, args).fetchall())

    def get(self, record_id: str, kind: str | None = None) -> Any:
        """The record with this id (of ``kind`` if given), or ``None``."""
        sql, args = "SELECT body FROM {records} WHERE id = ?", [record_id]
        if kind:
            sql, args = sql + " AND kind = ?", args + [kind]
        rows = self._query(sql, args)
        return _serde().loads(rows[0][0]) if rows else None

    def find(self, kind: str, *, name: str | None = None, limit: int | None = None,
             prefix: str | None = None) -> list[Any]:
        """Records of ``kind`` (optionally one ``name`` or an id prefix), newest first."""
        sql, args = "SELECT body FROM {records} WHERE kind = ?", [kind]
        if name is not None:
            sql, args = sql + " AND name = ?", args + [name]
        if prefix is not None:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            sql, args = sql + " AND id LIKE ? ESCAPE '\\'", args + [escaped + "%"]
        sql += f" ORDER BY created_at DESC, {self.dialect.tiebreak} DESC"
        if limit:
            sql, args = sql + " LIMIT ?", args + [int(limit)]
        return [_serde().loads(row[0]) for row in self._query(sql, args)]

    def lineage(self, record_id: str) -> dict[str, list[dict[str, Any]]]:
        """All ancestors (``upstream``) and descendants (``downstream``) of a record."""
        return {"upstream": self._walk(record_id, "child_id", "parent_id"),
                "downstream": self._walk(record_id, "parent_id", "child_id")}

    def _walk(self, record_id: str, near: str, far: str) -> list[dict[str, Any]]:
        """Edges reachable from ``record_id`` going from ``near`` to ``far`` ends, nearest first."""
        rows = self._query(
            f"""WITH RECURSIVE walk(parent_id, child_id, relation, depth) AS (
                   SELECT parent_id, child_id, relation, 1 FROM {{edges}} WHERE {near} = ?
                   UNION SELECT e.parent_id, e.child_id, e.relation, walk.depth + 1
                   FROM {{edges}} e JOIN walk ON e.{near} = walk.{far} WHERE walk.depth < 50)
               SELECT walk.parent_id, walk.child_id, walk.relation, MIN(walk.depth), MIN(r.kind)
               FROM walk LEFT JOIN {{records}} r ON r.id = walk.{far}
               GROUP BY walk.parent_id, walk.child_id, walk.relation ORDER BY MIN(walk.depth)""",
            (record_id,),
        )
        return [dict(zip(("parent", "child", "relation", "depth", "kind"), r)) for r in rows]

    # -- metrics -----------------------------------------------------------------------------

    def put_metrics(self, run_id: str, rows: Iterable[tuple[str, float, int | None, str]]) -> None:
        """Append metric rows ``(key, value, step, timestamp_iso)`` of ``run_id`` in one
        transaction; a bad row raises ``DataError`` naming it, with nothing written."""
        checked = [_metric_row(run_id, row, index) for index, row in enumerate(rows)]
        if checked:
            with self.transaction() as conn:
                self._insert_metrics(conn, checked)

    def _insert_metrics(self, conn, rows: list[tuple]) -> None:
        sql = self._sql(f"INSERT INTO {{metrics}} ({METRIC_COLUMNS}) VALUES (?, ?, ?, ?, ?)")
        conn.executemany(sql, rows)

    def get_metrics(self, run_id: str, key: str | None = None) -> list[tuple[str, float, int | None, str]]:
        """``(key, value, step, timestamp)`` rows of ``run_id`` (of one ``key`` if given),
        ordered by key, step (rows without one first), timestamp, then insertion."""
        sql, args = "SELECT key, value, step, ts FROM {metrics} WHERE run_id = ?", [run_id]
        if key is not None:
            sql, args = sql + " AND key = ?", args + [key]
        sql += f" ORDER BY key, (step IS NOT NULL), step, ts, {self.dialect.tiebreak}"
        return [(k, math.nan if v is None else v, s, t) for k, v, s, t in self._query(sql, args)]

    def latest_metrics(self, run_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """Per run, the last value of every key: the highest step (a row with a step
        beats one without), then the latest timestamp, then the last written."""
        ids = list(dict.fromkeys(run_ids))
        latest: dict[str, dict[str, float]] = {run_id: {} for run_id in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._query(
                f"""SELECT run_id, key, value FROM (
                      SELECT run_id, key, value, ROW_NUMBER() OVER (PARTITION BY run_id, key
                        ORDER BY (step IS NOT NULL) DESC, step DESC, ts DESC, {self.dialect.tiebreak} DESC) AS n
                      FROM {{metrics}} WHERE run_id IN ({", ".join("?" * len(chunk))})) ranked
                    WHERE n = 1 ORDER BY run_id, key""", chunk)
            for run_id, key, value in rows:
                latest[run_id][key] = math.nan if value is None else value
        return latest
