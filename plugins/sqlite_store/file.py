"""``SQLiteFile``: a SQLite file in the workspace (WAL mode, ``BEGIN IMMEDIATE`` write
transactions), the base of the metadata store and of the SQLite online store.

Opening is safe under concurrency: switching a fresh file to WAL takes an exclusive lock
that SQLite acquires *without* its busy handler, so a connection opening the file while
another holds any lock got "database is locked" at once. The switch is therefore retried
(with backoff, up to ``TIMEOUT``), and the schema is created inside ``BEGIN IMMEDIATE``,
which does wait for the busy timeout.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import attrs
from tether.errors import StoreError

#: Seconds a connection waits for another one's lock (busy timeout, and the WAL switch).
TIMEOUT = 30.0


@attrs.define(kw_only=True)
class SQLiteFile:
    """A SQLite file in the workspace: one connection in WAL mode, its schema created on
    first open, and ``transaction()``s (``BEGIN IMMEDIATE``, rolled back on error).

    Subclasses set ``file_name`` (the default under the workspace), ``schema_sql`` and
    ``label`` (how errors name the file), or override ``_prepare(conn)`` to create their
    tables another way (the metadata store runs its versioned migrations there).
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
                conn = sqlite3.connect(self.file, timeout=TIMEOUT, isolation_level=None)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"{self.label} '{self.file}' cannot be opened: {exc}") from None
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(TIMEOUT * 1000)}")
                _use_wal(conn)
                self._prepare(conn)
            except sqlite3.Error as exc:
                conn.close()
                raise StoreError(f"{self.label} '{self.file}' cannot be opened: {_reason(exc)}") from None
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Create (or upgrade) the file's tables; runs once per connection."""
        _create_schema(conn, self.schema_sql)

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


def _reason(exc: sqlite3.Error) -> str:
    """What SQLite said, made plain where its words mislead ("file is not a database")."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return "not a SQLite database (corrupted or another kind of file); it was left untouched"
    return text


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (persistent), retrying while another connection holds a lock.

    The switch needs an exclusive lock that SQLite takes without calling the busy handler,
    so concurrent first opens of a fresh file would fail at once without the retries.
    """
    deadline, pause = time.monotonic() + TIMEOUT, 0.005
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return  # already switched (by us before, or by another connection): no lock needed
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _create_schema(conn: sqlite3.Connection, schema_sql: str) -> None:
    """``CREATE ... IF NOT EXISTS`` in one ``BEGIN IMMEDIATE`` transaction (waits for writers)."""
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{schema_sql.strip().rstrip(';')};\nCOMMIT;")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
