"""``PostgresStore``: the records schema in a PostgreSQL schema per workspace, created on
open under an advisory lock; model versions are numbered under a transaction-scoped
advisory lock. ``psycopg`` is imported on first connect."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs
from tether.errors import StoreError
from tether.plugins.sql_records import POSTGRES, TABLES, Dialect, SQLRecordStore, schema_statements
from tether.sql import quote_identifier

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _reason(exc: Exception) -> str:
    """The last line of a driver error (never the dsn), or its type."""
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


@attrs.define(kw_only=True)
class PostgresStore(SQLRecordStore):
    """Records, runs and lineage in a PostgreSQL schema (created with its tables on open)."""

    name: ClassVar[str] = "postgres"
    requires: ClassVar[tuple[str, ...]] = ("psycopg",)
    extra: ClassVar[str | None] = "postgres"
    dialect: ClassVar[Dialect] = POSTGRES

    dsn: str
    schema: str = attrs.field(default="tether")
    connect_timeout: int = 5
    _conn: Any = attrs.field(default=None, init=False, repr=False)

    @schema.validator
    def _check_schema(self, _attribute, value: str) -> None:
        if not value.isidentifier():
            raise ValueError(f"schema {value!r} must be a plain identifier (letters, digits, _)")

    def _table_schema(self) -> str:
        # The schema was once written unquoted, which PostgreSQL folds to lower case; keep
        # naming that same schema now that it is quoted.
        return self.schema.translate(_ASCII_LOWER)

    def _connect(self) -> Any:
        """The open connection: search_path set to the schema alone, schema and tables created."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import psycopg

        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.Error as exc:
            raise StoreError(f"postgres store cannot connect ({_reason(exc)}); is the server running "
                             "and the dsn right?") from None
        try:
            conn.execute(f"SET search_path TO {quote_identifier(self._table_schema())}")
            self._create_schema(conn)
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"postgres store cannot set up schema '{self._table_schema()}' "
                             f"({_reason(exc)})") from None
        self._conn = conn
        return conn

    def _create_schema(self, conn) -> None:
        """Create the schema and tables unless they exist, serialized across processes."""
        schema = self._table_schema()
        present = conn.execute("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = %s AND "
                               "tablename = ANY(%s)", (schema, list(TABLES))).fetchone()[0]
        if present == len(TABLES):
            return  # a reader needs no CREATE privilege on an existing workspace
        with conn.transaction():
            # concurrent first openers would race on CREATE ... IF NOT EXISTS
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"tether-schema:{schema}".encode()),))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
            for statement in schema_statements(POSTGRES, schema):
                conn.execute(statement)

    def _read_connection(self) -> Any:
        return self._connect()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self._connect()
        with conn.transaction():
            yield conn

    def _max_version(self, conn, kind: str, name: str) -> int:
        # Serialize version allocation per (kind, name) for the rest of this transaction.
        key = zlib.crc32(f"{self._table_schema()}:{kind}:{name}".encode())
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        return super()._max_version(conn, kind, name)
