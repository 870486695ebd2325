"""The built-in online store: the latest feature values in one SQLite file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
from tether.backends import OnlineStore
from tether.errors import StoreError
from tether.plugins.sqlite_store.file import SQLiteFile

from .lookups import Row


@attrs.define(kw_only=True)
class SQLiteOnlineStore(SQLiteFile, OnlineStore):
    """The latest feature values in a SQLite file (``<workspace>/online.db`` by default)."""

    name: ClassVar[str] = "sqlite"
    file_name: ClassVar[str] = "online.db"
    label: ClassVar[str] = "online store"
    schema_sql: ClassVar[str] = """
        CREATE TABLE IF NOT EXISTS online_values (
            view TEXT NOT NULL, entity TEXT NOT NULL, feature TEXT NOT NULL,
            value TEXT NOT NULL, feature_ts INTEGER NOT NULL,
            PRIMARY KEY (view, entity, feature)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS online_views (
            view TEXT PRIMARY KEY, entity TEXT NOT NULL, features TEXT NOT NULL);
    """

    def describe(self) -> str:
        return f"sqlite:{self.file}"

    def check(self) -> None:
        self._open()

    def write(self, view: str, rows: list[Row], *, entity: str, features: Sequence[str]) -> int:
        try:
            with self.transaction() as conn:
                before = conn.total_changes
                conn.executemany(
                    """INSERT INTO online_values (view, entity, feature, value, feature_ts)
                       VALUES (?, ?, ?, ?, ?)
                       ON CONFLICT (view, entity, feature) DO UPDATE
                       SET value = excluded.value, feature_ts = excluded.feature_ts
                       WHERE excluded.feature_ts > online_values.feature_ts""",
                    [(view, k, f, v, t) for k, f, v, t in rows])
                written = conn.total_changes - before
                known = conn.execute("SELECT entity, features FROM online_views WHERE view = ?", (view,)).fetchone()
                merged = list(json.loads(known[1])) if known else []
                merged += [f for f in features if f not in merged]
                conn.execute("INSERT OR REPLACE INTO online_views (view, entity, features) VALUES (?, ?, ?)",
                             (view, entity, json.dumps(merged)))
        except sqlite3.Error as exc:
            raise StoreError(f"online store '{self.file}': write to view '{view}' failed, "
                             f"nothing written: {exc}") from None
        return written

    def read(self, view: str, keys: Sequence[str], features: Sequence[str]) -> dict[tuple[str, str], tuple[str, int]]:
        conn = self._open()
        found: dict[tuple[str, str], tuple[str, int]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            marks = ",".join("?" * len(chunk))
            fmarks = ",".join("?" * len(features))
            for k, f, v, t in conn.execute(
                    f"SELECT entity, feature, value, feature_ts FROM online_values WHERE view = ? "
                    f"AND entity IN ({marks}) AND feature IN ({fmarks})", [view, *chunk, *features]):
                found[(k, f)] = (v, t)
        return found

    def view_info(self, view: str) -> dict[str, Any] | None:
        row = self._open().execute("SELECT entity, features FROM online_views WHERE view = ?", (view,)).fetchone()
        return None if row is None else {"entity": row[0], "features": json.loads(row[1])}

    def drop_view(self, view: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM online_values WHERE view = ?", (view,))
            conn.execute("DELETE FROM online_views WHERE view = ?", (view,))

    def count(self, view: str) -> int:
        return self._open().execute("SELECT COUNT(*) FROM online_values WHERE view = ?", (view,)).fetchone()[0]
