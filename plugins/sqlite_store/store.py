"""``SQLiteStore``: records, runs and lineage in a SQLite file. Every ``put`` is one
transaction, so a record and its edges appear together or not at all; reading a store
that was never written creates nothing."""

from __future__ import annotations

import sqlite3
from typing import ClassVar

import attrs
from tether.plugins.sql_records import SQLITE, Dialect, SQLRecordStore, schema_statements

from .file import SQLiteFile


@attrs.define(kw_only=True)
class SQLiteStore(SQLiteFile, SQLRecordStore):
    """Records, runs and lineage in a SQLite file (default ``<workspace>/tether.db``)."""

    name: ClassVar[str] = "sqlite"
    file_name: ClassVar[str] = "tether.db"
    schema_sql: ClassVar[str] = ";\n".join(schema_statements(SQLITE)) + ";"
    label: ClassVar[str] = "metadata store"
    dialect: ClassVar[Dialect] = SQLITE

    def _read_connection(self) -> sqlite3.Connection | None:
        if self._conn is None and not self.file.exists():
            return None  # reading never creates the database
        return self._open()
