"""The SQL behind both metadata stores: one schema, one set of statements, two dialects.

Records are stored as their serde envelope (JSON) with indexed columns for lookups;
lineage edges live in their own table. SQLite and PostgreSQL differ only in the small
substitutions a ``Dialect`` holds (placeholder, insertion-order column, upsert form);
``SQLRecordStore`` holds the reads and writes, its subclasses the connection.
``put_versioned`` numbers a record and, given ``unchanged``, first compares the latest
version in the same transaction, so concurrent writers of an identical record store it once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import attrs
from tether.backends import MetadataStore
from tether.sql import quote_identifier

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

TABLES = ("records", "edges")
RECORD_COLUMNS = "id, kind, name, version, run_id, created_at, body"


@attrs.frozen
class Dialect:
    """What differs between SQL engines in the statements tether writes."""

    placeholder: str  # how the driver spells a bound parameter
    sequence: str  # column definition giving insertion order ("" when the engine has one built in)
    tiebreak: str  # orders records created in the same instant
    insert_ignore: str  # INSERT that keeps an existing row
    upsert: str  # INSERT that replaces an existing row (same id)


SQLITE = Dialect(
    placeholder="?",
    sequence="",
    tiebreak="rowid",
    insert_ignore="INSERT OR IGNORE INTO {table} ({cols}) VALUES ({vals})",
    upsert="INSERT OR REPLACE INTO {table} ({cols}) VALUES ({vals})",
)

POSTGRES = Dialect(
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
    """``{"records": ..., "edges": ...}``: the quoted tables, qualified by ``schema`` if given."""
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


class SQLRecordStore(MetadataStore):
    """Records, runs and lineage in SQL; subclasses supply the connection and ``dialect``.

    Subclasses implement ``_read_connection()`` (a connection, or ``None`` while nothing
    was ever stored) and ``transaction()`` (a context manager yielding a connection in a
    transaction, rolled back on error), and ``_table_schema()`` if the tables are qualified.
    Statements are written with ``?`` placeholders and ``{records}``/``{edges}`` tables,
    always parameterized; ``_sql`` rewrites them for the dialect.
    """

    dialect: ClassVar[Dialect]

    def _table_schema(self) -> str | None:
        """The schema every table is qualified with (``None``: unqualified)."""
        return None

    def _read_connection(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def transaction(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        sql = sql.format(**table_names(self._table_schema()))
        return sql if self.dialect.placeholder == "?" else sql.replace("?", self.dialect.placeholder)

    def _execute(self, conn, sql: str, args=()):
        return conn.execute(self._sql(sql), tuple(args))

    # -- writing -----------------------------------------------------------------------------

    def put(self, record: Any, *, parents: Iterable[tuple[str, str]] = (), run_id: str | None = None,
            replace: bool = False) -> None:
        """Write ``record`` and its lineage edges (``(parent_id, relation)``) atomically."""
        with self.transaction() as conn:
            self._insert(conn, record, parents=parents, run_id=run_id, replace=replace)

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
                      unchanged: Callable[[Any], bool] | None = None) -> Any:
        """Allocate the next version of ``name`` and write ``build(version)`` in one transaction.

        With ``unchanged``, the latest stored version is read in that same transaction (after
        the version lock) and, if ``unchanged(latest)`` is true, returned with nothing
        written: concurrent writers of one record then store it once.
        """
        with self.transaction() as conn:
            top = self._max_version(conn, kind, name)
            if unchanged is not None and top:
                latest = self._version(conn, kind, name, top)
                if latest is not None and unchanged(latest):
                    return latest
            record = build(top + 1)
            self._insert(conn, record, parents=parents, run_id=run_id)
        return record

    def _version(self, conn, kind: str, name: str, version: int) -> Any:
        sql = "SELECT body FROM {records} WHERE kind = ? AND name = ? AND version = ?"
        row = self._execute(conn, sql, (kind, name, version)).fetchone()
        return _serde().loads(row[0]) if row else None

    # -- reading -----------------------------------------------------------------------------

    def _query(self, sql: str, args=()) -> list[tuple]:
        conn = self._read_connection()
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
