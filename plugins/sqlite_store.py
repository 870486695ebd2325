"""The built-in metadata store: one SQLite file in the workspace (``<workspace>/tether.db``).

Records are stored as their serde envelope (JSON) with indexed columns for lookups;
lineage edges in their own table. Every ``put`` is one transaction, so a record and its
edges appear together or not at all. The database file is created on first write.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

import attrs

from tether import hookimpl, serde
from tether.backends import MetadataStore
from tether.errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT,
    version INTEGER,
    run_id TEXT,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_kind_name ON records (kind, name, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS records_name_version ON records (kind, name, version)
    WHERE version IS NOT NULL;
CREATE TABLE IF NOT EXISTS edges (
    parent_id TEXT NOT NULL,
    child_id TEXT NOT NULL,
    relation TEXT NOT NULL,
    run_id TEXT,
    PRIMARY KEY (parent_id, child_id, relation)
);
CREATE INDEX IF NOT EXISTS edges_child ON edges (child_id);
"""


def record_columns(record: Any) -> tuple[str, str, str | None, int | None, str]:
    """(id, kind, name, version, created_at) of a record, as the stores index them."""
    name = getattr(record, "name", None) or getattr(record, "chain", None)
    version = getattr(record, "version", None)
    created = getattr(record, "created_at", None) or getattr(record, "started_at", None)
    return (record.id, record.kind, name, version if isinstance(version, int) else None,
            serde.converter.unstructure(created))


class SQLRecordStore(MetadataStore):
    """Records, runs and lineage in SQL; subclasses supply the connection and dialect.

    Statements are written with ``?`` placeholders and always parameterized;
    ``_sql`` rewrites them for drivers that use ``%s``.
    """

    placeholder: ClassVar[str] = "?"
    tiebreak: ClassVar[str] = "rowid"
    insert_ignore: ClassVar[str] = "INSERT OR IGNORE INTO {table} ({cols}) VALUES ({vals})"
    upsert: ClassVar[str] = "INSERT OR REPLACE INTO {table} ({cols}) VALUES ({vals})"

    def _connect(self, create: bool):  # pragma: no cover - abstract
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

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
        cols = "id, kind, name, version, run_id, created_at, body"
        template = self.upsert if replace else self.insert_ignore
        self._execute(conn, template.format(table="records", cols=cols, vals="?, ?, ?, ?, ?, ?, ?"),
                      (rid, kind, name, version, run_id, created, serde.dumps(record)))
        for parent, relation in parents:
            self._execute(conn, self.insert_ignore.format(table="edges", cols="parent_id, child_id, relation, run_id",
                                                          vals="?, ?, ?, ?"),
                          (parent, rid, relation, run_id))

    def max_version(self, conn, kind: str, name: str) -> int:
        row = self._execute(conn, "SELECT MAX(version) FROM records WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        return row[0] or 0

    def put_versioned(self, build, *, kind: str, name: str, parents: Iterable[tuple[str, str]] = (),
                      run_id: str | None = None):
        """Allocate the next version of ``name`` and write ``build(version)`` in one transaction."""
        with self.transaction() as conn:
            record = build(self.max_version(conn, kind, name) + 1)
            self._insert(conn, record, parents=parents, run_id=run_id)
        return record

    # -- reading -----------------------------------------------------------------------------

    def _query(self, sql: str, args=()) -> list[tuple]:
        conn = self._connect(create=False)
        if conn is None:
            return []
        return list(self._execute(conn, sql, args).fetchall())

    def get(self, record_id: str, kind: str | None = None):
        sql, args = "SELECT body FROM records WHERE id = ?", [record_id]
        if kind:
            sql, args = sql + " AND kind = ?", args + [kind]
        rows = self._query(sql, args)
        return serde.loads(rows[0][0]) if rows else None

    def find(self, kind: str, *, name: str | None = None, limit: int | None = None,
             prefix: str | None = None) -> list:
        """Records of ``kind`` (optionally one ``name`` or an id prefix), newest first."""
        sql, args = "SELECT body FROM records WHERE kind = ?", [kind]
        if name is not None:
            sql, args = sql + " AND name = ?", args + [name]
        if prefix is not None:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            sql, args = sql + " AND id LIKE ? ESCAPE '\\'", args + [escaped + "%"]
        sql += f" ORDER BY created_at DESC, {self.tiebreak} DESC"
        if limit:
            sql, args = sql + " LIMIT ?", args + [int(limit)]
        return [serde.loads(row[0]) for row in self._query(sql, args)]

    def edges(self, record_id: str) -> list[dict[str, Any]]:
        """Every edge touching ``record_id``, as dicts with parent, child, relation, run."""
        rows = self._query(
            "SELECT parent_id, child_id, relation, run_id FROM edges WHERE parent_id = ? OR child_id = ?",
            (record_id, record_id),
        )
        return [dict(zip(("parent", "child", "relation", "run_id"), row)) for row in rows]

    def lineage(self, record_id: str) -> dict[str, list[dict[str, Any]]]:
        """All ancestors (``upstream``) and descendants (``downstream``) of a record."""
        def walk(near: str, far: str) -> list[dict[str, Any]]:
            rows = self._query(
                f"""WITH RECURSIVE walk(parent_id, child_id, relation, depth) AS (
                       SELECT parent_id, child_id, relation, 1 FROM edges WHERE {near} = ?
                       UNION SELECT e.parent_id, e.child_id, e.relation, walk.depth + 1
                       FROM edges e JOIN walk ON e.{near} = walk.{far} WHERE walk.depth < 50)
                   SELECT walk.parent_id, walk.child_id, walk.relation, MIN(walk.depth), MIN(r.kind)
                   FROM walk LEFT JOIN records r ON r.id = walk.{far}
                   GROUP BY walk.parent_id, walk.child_id, walk.relation ORDER BY MIN(walk.depth)""",
                (record_id,),
            )
            return [dict(zip(("parent", "child", "relation", "depth", "kind"), r)) for r in rows]

        return {"upstream": walk("child_id", "parent_id"), "downstream": walk("parent_id", "child_id")}

    def count(self, kind: str | None = None) -> int:
        if kind:
            rows = self._query("SELECT COUNT(*) FROM records WHERE kind = ?", (kind,))
        else:
            rows = self._query("SELECT COUNT(*) FROM records")
        return rows[0][0] if rows else 0


@attrs.define(kw_only=True)
class SQLiteFile:
    """A SQLite file in the workspace: one connection in WAL mode, its schema created on
    first open, and ``write()`` transactions (``BEGIN IMMEDIATE``, rolled back on error).

    Subclasses set ``file_name`` (the default under the workspace), ``schema_sql`` and
    ``label`` (how errors name the file).
    """

    file_name: ClassVar[str]
    schema_sql: ClassVar[str]
    label: ClassVar[str]

    workspace: str = ".tether"
    path: str | None = None
    _conn: sqlite3.Connection | None = attrs.field(default=None, init=False, repr=False)

    @property
    def file(self) -> Path:
        return Path(self.path) if self.path else Path(self.workspace) / self.file_name

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.file, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(self.schema_sql)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"{self.label} '{self.file}' cannot be opened: {exc}") from None
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception."""
        conn = self._open()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.label} '{self.file}' cannot be written: {exc}") from None
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


@attrs.define(kw_only=True)
class SQLiteStore(SQLiteFile, SQLRecordStore):
    """Records, runs and lineage in a SQLite file (default ``<workspace>/tether.db``)."""

    name: ClassVar[str] = "sqlite"
    file_name: ClassVar[str] = "tether.db"
    schema_sql: ClassVar[str] = SCHEMA
    label: ClassVar[str] = "metadata store"

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None and not create and not self.file.exists():
            return None  # reading never creates the database
        return self._open()


@hookimpl
def tether_add_backends(backends):
    backends.add(SQLiteStore)
