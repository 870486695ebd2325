"""``SQLiteFile``: a SQLite file in the workspace (WAL mode, ``BEGIN IMMEDIATE`` write
transactions), the base of the metadata store and of the SQLite online store."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import attrs
from tether.errors import StoreError


@attrs.define(kw_only=True)
class SQLiteFile:
    """A SQLite file in the workspace: one connection in WAL mode, its schema created on
    first open, and ``transaction()``s (``BEGIN IMMEDIATE``, rolled back on error).

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
