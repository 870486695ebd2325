"""The built-in metadata store: one SQLite file in the workspace (``<workspace>/tether.db``).

Records are stored as their serde envelope (JSON) with indexed columns for lookups;
lineage edges in their own table. Every ``put`` is one transaction, so a record and its
edges appear together or not at all. The database file is created on first write.
"""

from __future__ import annotations

import contextlib
import json
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


@attrs.define(kw_only=True)
class SQLiteStore(MetadataStore):
    """Records, runs and lineage in a SQLite file."""

    name: ClassVar[str] = "sqlite"
    workspace: str = ".tether"
    path: str | None = None
    _conn: sqlite3.Connection | None = attrs.field(default=None, init=False, repr=False)

    @property
    def file(self) -> Path:
        return Path(self.path) if self.path else Path(self.workspace) / "tether.db"

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if not create and not self.file.exists():
            return None
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.file, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"metadata store '{self.file}' cannot be opened: {exc}") from None
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception."""
        conn = self._connect(create=True)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- writing -----------------------------------------------------------------------------

    def put(self, record: Any, *, parents: Iterable[tuple[str, str]] = (), run_id: str | None = None,
            replace: bool = False) -> None:
        """Write ``record`` and its lineage edges (``(parent_id, relation)``) atomically."""
        with self.transaction() as conn:
            self._insert(conn, record, parents=parents, run_id=run_id, replace=replace)

    def _insert(self, conn, record, *, parents=(), run_id=None, replace=False) -> None:
        rid, kind, name, version, created = record_columns(record)
        body = serde.dumps(record)
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        conn.execute(
            f"{verb} INTO records (id, kind, name, version, run_id, created_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rid, kind, name, version, run_id, created, body),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO edges (parent_id, child_id, relation, run_id) VALUES (?, ?, ?, ?)",
            [(parent, rid, relation, run_id) for parent, relation in parents],
        )

    def max_version(self, conn, kind: str, name: str) -> int:
        row = conn.execute("SELECT MAX(version) FROM records WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        return row[0] or 0

    def put_versioned(self, build, *, kind: str, name: str, parents: Iterable[tuple[str, str]] = (),
                      run_id: str | None = None):
        """Allocate the next version of ``name`` and write ``build(version)`` in one transaction."""
        with self.transaction() as conn:
            record = build(self.max_version(conn, kind, name) + 1)
            self._insert(conn, record, parents=parents, run_id=run_id)
        return record

    # -- reading -----------------------------------------------------------------------------

    def get(self, record_id: str, kind: str | None = None):
        conn = self._connect(create=False)
        if conn is None:
            return None
        sql, args = "SELECT body FROM records WHERE id = ?", [record_id]
        if kind:
            sql, args = sql + " AND kind = ?", args + [kind]
        row = conn.execute(sql, args).fetchone()
        return serde.loads(row[0]) if row else None

    def find(self, kind: str, *, name: str | None = None, limit: int | None = None,
             prefix: str | None = None) -> list:
        """Records of ``kind`` (optionally one ``name``), newest first."""
        conn = self._connect(create=False)
        if conn is None:
            return []
        sql, args = "SELECT body FROM records WHERE kind = ?", [kind]
        if name is not None:
            sql, args = sql + " AND name = ?", args + [name]
        if prefix is not None:
            sql, args = sql + " AND id LIKE ? ESCAPE '\\'", args + [prefix.replace("%", "\\%").replace("_", "\\_") + "%"]
        sql += " ORDER BY created_at DESC, rowid DESC"
        if limit:
            sql, args = sql + " LIMIT ?", args + [int(limit)]
        return [serde.loads(row[0]) for row in conn.execute(sql, args)]

    def edges(self, record_id: str) -> list[dict[str, Any]]:
        """Every edge touching ``record_id``, as dicts with parent, child, relation, run."""
        conn = self._connect(create=False)
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT parent_id, child_id, relation, run_id FROM edges WHERE parent_id = ? OR child_id = ?",
            (record_id, record_id),
        )
        return [dict(zip(("parent", "child", "relation", "run_id"), row)) for row in rows]

    def lineage(self, record_id: str) -> dict[str, list[dict[str, Any]]]:
        """All ancestors (``upstream``) and descendants (``downstream``) of a record."""
        conn = self._connect(create=False)
        if conn is None:
            return {"upstream": [], "downstream": []}
        up = conn.execute(
            """WITH RECURSIVE up(parent_id, child_id, relation, depth) AS (
                   SELECT parent_id, child_id, relation, 1 FROM edges WHERE child_id = ?
                   UNION SELECT e.parent_id, e.child_id, e.relation, up.depth + 1
                   FROM edges e JOIN up ON e.child_id = up.parent_id WHERE up.depth < 50)
               SELECT up.parent_id, up.child_id, up.relation, MIN(up.depth), r.kind
               FROM up LEFT JOIN records r ON r.id = up.parent_id
               GROUP BY up.parent_id, up.child_id, up.relation ORDER BY MIN(up.depth)""",
            (record_id,),
        ).fetchall()
        down = conn.execute(
            """WITH RECURSIVE down(parent_id, child_id, relation, depth) AS (
                   SELECT parent_id, child_id, relation, 1 FROM edges WHERE parent_id = ?
                   UNION SELECT e.parent_id, e.child_id, e.relation, down.depth + 1
                   FROM edges e JOIN down ON e.parent_id = down.child_id WHERE down.depth < 50)
               SELECT down.parent_id, down.child_id, down.relation, MIN(down.depth), r.kind
               FROM down LEFT JOIN records r ON r.id = down.child_id
               GROUP BY down.parent_id, down.child_id, down.relation ORDER BY MIN(down.depth)""",
            (record_id,),
        ).fetchall()
        keys = ("parent", "child", "relation", "depth", "kind")
        return {"upstream": [dict(zip(keys, r)) for r in up], "downstream": [dict(zip(keys, r)) for r in down]}

    def count(self, kind: str | None = None) -> int:
        conn = self._connect(create=False)
        if conn is None:
            return 0
        if kind:
            return conn.execute("SELECT COUNT(*) FROM records WHERE kind = ?", (kind,)).fetchone()[0]
        return conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]


@hookimpl
def tether_add_backends(backends):
    backends.add(SQLiteStore)
