"""``SQLiteStore``: records, runs, lineage and metrics in a SQLite file. Every ``put`` is
one transaction, so a record and its edges appear together or not at all; reading a
store that was never written creates nothing. Opening the file applies the pending
schema migrations inside ``BEGIN IMMEDIATE``, so concurrent openers of an old file
upgrade it once."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import ClassVar

import attrs
from tether.plugins.sql_migrations import sqlite_lock
from tether.plugins.sql_records import SQLITE, Dialect, SQLRecordStore

from .file import SQLiteFile


@attrs.define(kw_only=True)
class SQLiteStore(SQLiteFile, SQLRecordStore):
    """Records, runs and lineage in a SQLite file (default ``<workspace>/tether.db``)."""

    name: ClassVar[str] = "sqlite"
    file_name: ClassVar[str] = "tether.db"
    schema_sql: ClassVar[str] = ""  # the tables come from the migrations of component "store"
    label: ClassVar[str] = "metadata store"
    dialect: ClassVar[Dialect] = SQLITE

    def describe(self) -> str:
        return f"{self.label} '{self.file}'"

    def _prepare(self, conn: sqlite3.Connection) -> None:
        self._upgrade(conn)

    def _migration_lock(self, conn: sqlite3.Connection):
        return sqlite_lock(conn)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        yield self._open()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        if self._conn is None and not self.file.exists():
            yield None  # reading never creates the database
        else:
            yield self._open()
