"""PostgreSQL metadata store (extra ``postgres``): the SQLite store's schema on a server.

For teams that share one registry: records, runs and lineage in PostgreSQL, written in
transactions; model versions are numbered under a transaction-scoped advisory lock, so
two registrations of the same model name never get the same number. The connection
string usually comes from the environment: ``store: {plugin: postgres, params: {dsn:
"${TETHER_PG_DSN}"}}``; it is never logged.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Any, ClassVar, Iterator

import attrs

from tether import hookimpl
from tether.errors import StoreError
from tether.plugins.sqlite_store import SQLRecordStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS {schema}.records (
    seq BIGSERIAL UNIQUE,
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT,
    version INTEGER,
    run_id TEXT,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_kind_name ON {schema}.records (kind, name, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS records_name_version ON {schema}.records (kind, name, version)
    WHERE version IS NOT NULL;
CREATE TABLE IF NOT EXISTS {schema}.edges (
    parent_id TEXT NOT NULL,
    child_id TEXT NOT NULL,
    relation TEXT NOT NULL,
    run_id TEXT,
    PRIMARY KEY (parent_id, child_id, relation)
);
CREATE INDEX IF NOT EXISTS edges_child ON {schema}.edges (child_id);
"""


@attrs.define(kw_only=True)
class PostgresStore(SQLRecordStore):
    """Records, runs and lineage in a PostgreSQL schema (created on first write)."""

    name: ClassVar[str] = "postgres"
    requires: ClassVar[tuple[str, ...]] = ("psycopg",)
    extra: ClassVar[str | None] = "postgres"
    placeholder: ClassVar[str] = "%s"
    tiebreak: ClassVar[str] = "seq"
    insert_ignore: ClassVar[str] = "INSERT INTO {table} ({cols}) VALUES ({vals}) ON CONFLICT DO NOTHING"
    upsert: ClassVar[str] = (
        "INSERT INTO {table} ({cols}) VALUES ({vals}) ON CONFLICT (id) DO UPDATE SET "
        "kind = EXCLUDED.kind, name = EXCLUDED.name, version = EXCLUDED.version, "
        "run_id = EXCLUDED.run_id, created_at = EXCLUDED.created_at, body = EXCLUDED.body"
    )

    dsn: str
    schema: str = attrs.field(default="tether")
    connect_timeout: int = 5
    _conn: Any = attrs.field(default=None, init=False, repr=False)
    _ready: bool = attrs.field(default=False, init=False, repr=False)

    @schema.validator
    def _check_schema(self, _attribute, value: str) -> None:
        if not value.isidentifier():
            raise ValueError(f"schema {value!r} must be a plain identifier (letters, digits, _)")

    def _connect(self, create: bool):
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import psycopg

        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"postgres store cannot connect ({reason}); is the server running "
                             "and the dsn right?") from None
        conn.execute(f"SET search_path TO {self.schema}, public")
        self._conn = conn
        if not self._ready:
            exists = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'records'",
                (self.schema,),
            ).fetchone()
            if not exists and not create:
                return conn
            with conn.transaction():
                # concurrent first writers would race on CREATE ... IF NOT EXISTS
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"tether-schema:{self.schema}".encode()),))
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                for statement in SCHEMA.format(schema=self.schema).split(";"):
                    if statement.strip():
                        conn.execute(statement)
            self._ready = True
        return conn

    def _query(self, sql: str, args=()) -> list[tuple]:
        conn = self._connect(create=False)
        if not self._ready:
            return []
        return list(self._execute(conn, sql, args).fetchall())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self._connect(create=True)
        with conn.transaction():
            yield conn

    def max_version(self, conn, kind: str, name: str) -> int:
        # Serialize version allocation per (kind, name) for the rest of this transaction.
        key = zlib.crc32(f"{self.schema}:{kind}:{name}".encode())
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        return super().max_version(conn, kind, name)


@hookimpl
def tether_add_backends(backends):
    backends.add(PostgresStore)
