"""``PostgresStore``: the records schema in a PostgreSQL schema per workspace, reached
through a connection pool (``psycopg_pool``). The first connection checks the server and
applies the pending migrations under an advisory lock; model versions (and every
versioned record, audit entries included) are numbered under a transaction-scoped
advisory lock per name, the audit log's taken last. Errors name the server as ``host:port/db``,
never the dsn (which may hold a password). ``psycopg`` is imported on first connect."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs
from tether.errors import StoreError
from tether.plugins.sql_records import POSTGRES, Dialect, SQLRecordStore
from tether.sql import quote_identifier

#: libpq's preamble naming the server (which the store names itself, as host:port/db)
_SERVER_PREFIX = re.compile(r'^(connection failed: )?(connection to server (at|on) .*? failed: )?')
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _reason(exc: Exception) -> str:
    """A driver error on one line, without the "connection to server at ... failed:" prefix
    (the store names the server itself); the dsn is never part of it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = "; ".join(lines) or type(exc).__name__
    text = _SERVER_PREFIX.sub("", text)
    return text.replace("FATAL:  ", "").replace("\t", " ")


def server_of(dsn: str) -> str:
    """``host:port/db`` of a dsn (URL or ``key=value`` form), libpq's defaults filled in;
    never the user's password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - the parser's message may quote the dsn: say nothing of it
        return "<unparsable dsn>"
    host = str(info.get("host") or os.environ.get("PGHOST") or "localhost").split(",")[0]
    port = str(info.get("port") or os.environ.get("PGPORT") or "5432").split(",")[0]
    user = info.get("user") or os.environ.get("PGUSER") or ""
    db = info.get("dbname") or os.environ.get("PGDATABASE") or user or "?"
    return f"{host}:{port}/{db}"


@attrs.define(kw_only=True)
class PostgresStore(SQLRecordStore):
    """Records, runs and lineage in a PostgreSQL schema (created with its tables on open).

    ``pool_size`` connections at most (2 or more) are kept open (threads of one process share them);
    ``connect_timeout`` seconds bound connecting and waiting for a free connection.
    """

    name: ClassVar[str] = "postgres"
    requires: ClassVar[tuple[str, ...]] = ("psycopg", "psycopg_pool")
    extra: ClassVar[str | None] = "postgres"
    dialect: ClassVar[Dialect] = POSTGRES

    dsn: str = attrs.field(repr=False)
    schema: str = attrs.field(default="tether")
    connect_timeout: int = attrs.field(default=5)
    pool_size: int = attrs.field(default=4)
    _pool: Any = attrs.field(default=None, init=False, repr=False)
    _pool_lock: Any = attrs.field(factory=threading.Lock, init=False, repr=False)

    @schema.validator
    def _check_schema(self, _attribute, value: str) -> None:
        if not value.isidentifier():
            raise ValueError(f"schema {value!r} must be a plain identifier (letters, digits, _)")

    @connect_timeout.validator
    def _check_timeout(self, _attribute, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"connect_timeout must be a whole number of seconds >= 1, got {value!r}")

    @pool_size.validator
    def _check_pool_size(self, _attribute, value: int) -> None:
        # 2 at least: a registry change reads the model's log while its write transaction
        # holds a connection
        if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 100:
            raise ValueError(f"pool_size must be a whole number from 2 to 100, got {value!r}")

    @property
    def server(self) -> str:
        """``host:port/db``, for messages."""
        return server_of(self.dsn)

    def describe(self) -> str:
        return f"postgres store {self.server} schema '{self._table_schema()}'"

    def _table_schema(self) -> str:
        # The schema was once written unquoted, which PostgreSQL folds to lower case; keep
        # naming that same schema now that it is quoted.
        return self.schema.translate(_ASCII_LOWER)

    def _configure(self, conn) -> None:
        """Every pooled connection sees only the workspace's schema."""
        conn.execute(f"SET search_path TO {quote_identifier(self._table_schema())}")

    def _open_pool(self) -> Any:
        """The pool, created on first use after one direct connection has checked the
        server (so a refused connection or a wrong user or database is reported as the
        server said it) and migrated the schema."""
        if self._pool is not None:
            return self._pool
        with self._pool_lock:  # threads sharing the store open one pool
            if self._pool is None:
                self._pool = self._new_pool()
        return self._pool

    def _new_pool(self) -> Any:
        import psycopg
        from psycopg_pool import ConnectionPool

        try:
            first = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.Error as exc:
            raise StoreError(f"postgres store {self.server} cannot connect: {_reason(exc)}") from None
        try:
            self._configure(first)
            self._upgrade(first)
        except psycopg.Error as exc:
            raise StoreError(f"postgres store {self.server} cannot set up schema '{self._table_schema()}': "
                             f"{_reason(exc)}") from None
        finally:
            first.close()
        return ConnectionPool(self.dsn, min_size=1, max_size=self.pool_size, timeout=self.connect_timeout,
                              kwargs={"autocommit": True, "connect_timeout": self.connect_timeout},
                              configure=self._configure, name=f"tether-{self._table_schema()}", open=True)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        import psycopg
        from psycopg_pool import PoolTimeout

        pool = self._open_pool()
        try:
            with pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise StoreError(f"postgres store {self.server}: no connection within {self.connect_timeout}s "
                             "(is the server still running?)") from None
        except psycopg.OperationalError as exc:
            raise StoreError(f"postgres store {self.server}: {_reason(exc)}") from None

    _reading = _connection

    @contextlib.contextmanager
    def _migration_lock(self, conn) -> Iterator[None]:
        """One transaction holding the schema's advisory lock, so concurrent openers of a
        fresh or old schema migrate it once; the schema is created inside it."""
        schema = self._table_schema()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"tether-schema:{schema}".encode()),))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
            yield

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._connection() as conn, conn.transaction():
            yield conn

    def _max_version(self, conn, kind: str, name: str) -> int:
        # Serialize version allocation per (kind, name) for the rest of this transaction.
        key = zlib.crc32(f"{self._table_schema()}:{kind}:{name}".encode())
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        return super()._max_version(conn, kind, name)

    def _insert_metrics(self, conn, rows: list[tuple]) -> None:
        # COPY streams the rows in one round trip: far faster than one INSERT per row
        table = f"{quote_identifier(self._table_schema())}.{quote_identifier('metrics')}"
        with conn.cursor() as cur, cur.copy(f"COPY {table} (run_id, key, value, step, ts) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
