"""Versioned schema migrations for the SQL metadata stores (SQLite and PostgreSQL).

Each *component* owns some tables and an ordered list of ``Migration`` s numbered 1, 2,
3, ...; the store's ``schema_migrations`` table records which versions of which
component were applied (and when). Opening a store applies the pending ones, every
migration exactly once, all of them in one transaction that holds the store's write
lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock), so
processes opening a fresh or an old store at the same time wait for each other and
the second one finds nothing left to do. A store whose recorded version of a component
is newer than the migrations this installation knows is refused: an older tether never
writes to a schema it does not understand.

The metadata store's own tables are the component ``store``. A plugin adds tables of
its own by registering a component, usually in its ``tether_add_backends`` hook (which
runs before any store is opened)::

    from tether.plugins.sql_migrations import Migration, register_migrations

    register_migrations("traces", [
        Migration(1, "spans table", sql=(
            "CREATE TABLE IF NOT EXISTS {spans} (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, "
            "body TEXT NOT NULL, PRIMARY KEY (trace_id, span_id))",
            "CREATE INDEX IF NOT EXISTS spans_by_trace ON {spans} (trace_id)",
        )),
    ])

``{name}`` in a statement is the quoted table ``name`` (schema-qualified on PostgreSQL);
index names are written bare. A migration that needs more than fixed statements gives
``run=``, a function of a ``MigrationDB`` (``dialect``, ``table(name)``, ``execute``,
``executemany``). A store opened before a component was registered applies it on
``store.migrate()``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import attrs
from tether.errors import PluginError, StoreError
from tether.sql import quote_identifier

#: The table recording applied migrations, one row per (component, version).
MIGRATIONS_TABLE = "schema_migrations"
MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema_migrations} (component TEXT NOT NULL, version INTEGER NOT NULL, "
    "description TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (component, version))"
)

_COMPONENT = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


@attrs.frozen
class Migration:
    """One step of a component's schema: ``sql`` statements and/or a ``run`` function."""

    version: int
    description: str
    sql: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    run: Callable[[MigrationDB], None] | None = attrs.field(default=None, eq=False)


_registry: dict[str, tuple[Migration, ...]] = {}
_registry_lock = threading.Lock()


def register_migrations(component: str, migrations: Iterable[Migration]) -> None:
    """Declare ``component``'s migrations (versions 1..n in order); registering the same
    component again replaces its list, so calling this from a hook is safe."""
    if not isinstance(component, str) or not _COMPONENT.match(component):
        raise PluginError(f"migration component {component!r} must be lower-case letters, digits, '_', '.', '-'")
    steps = tuple(migrations)
    versions = [m.version for m in steps]
    if versions != list(range(1, len(steps) + 1)):
        raise PluginError(f"migrations of '{component}' must be numbered 1, 2, 3, ... in order; got {versions}")
    for step in steps:
        if not step.sql and step.run is None:
            raise PluginError(f"migration {step.version} of '{component}' has neither sql nor run")
    with _registry_lock:
        _registry[component] = steps


def registered() -> dict[str, tuple[Migration, ...]]:
    """Every registered component and its migrations."""
    with _registry_lock:
        return dict(_registry)


class _Tables(dict):
    """``{name}`` -> the quoted (schema-qualified) table ``name``, for ``str.format_map``."""

    def __init__(self, schema: str | None) -> None:
        super().__init__()
        self.prefix = quote_identifier(schema) + "." if schema else ""

    def __missing__(self, name: str) -> str:
        return self.prefix + quote_identifier(name)


@attrs.define
class MigrationDB:
    """What a migration's ``run`` function works with: one connection, inside the
    migration transaction. Statements use ``?`` placeholders and ``{table}`` names."""

    conn: Any
    dialect: str  # "sqlite" or "postgres"
    schema: str | None = None  # PostgreSQL: the workspace's schema

    def table(self, name: str) -> str:
        """The quoted, qualified table ``name``."""
        return _Tables(self.schema)[name]

    def sql(self, text: str) -> str:
        text = text.format_map(_Tables(self.schema))
        return text.replace("?", "%s") if self.dialect == "postgres" else text

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Any:
        return self.conn.execute(self.sql(sql), tuple(args))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if not rows:
            return
        if self.dialect == "postgres":
            with self.conn.cursor() as cur:
                cur.executemany(self.sql(sql), rows)
        else:
            self.conn.executemany(self.sql(sql), rows)

    def has_table(self, name: str) -> bool:
        if self.dialect == "postgres":
            qualified = self.table(name)
            return self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()[0]
        row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        return row is not None


def applied_versions(db: MigrationDB) -> dict[str, int]:
    """component -> highest applied version (empty when the table does not exist yet)."""
    if not db.has_table(MIGRATIONS_TABLE):
        return {}
    rows = db.execute("SELECT component, MAX(version) FROM {schema_migrations} GROUP BY component").fetchall()
    return {component: int(version) for component, version in rows}


def _check_known(applied: dict[str, int], known: dict[str, tuple[Migration, ...]], label: str) -> None:
    for component, steps in sorted(known.items()):
        if applied.get(component, 0) > len(steps):
            raise StoreError(f"{label} has schema version {applied[component]} of '{component}', newer than "
                             f"the {len(steps)} this tether knows; upgrade tether to use this store")


def _pending(applied: dict[str, int], known: dict[str, tuple[Migration, ...]]) -> list[tuple[str, Migration]]:
    """The steps still to apply: the store's own tables first, then other components by name."""
    order = sorted(known, key=lambda component: (component != "store", component))
    return [(component, step) for component in order for step in known[component][applied.get(component, 0):]]


def upgrade(db: MigrationDB, lock: Callable[[], AbstractContextManager[None]], *, label: str) -> list[tuple[str, int]]:
    """Apply every registered migration the store lacks; return ``(component, version)`` s applied.

    Reads the applied versions first without a lock (a store already up to date needs
    nothing else, not even write access); otherwise takes ``lock()`` (a context manager
    holding a write transaction on ``db.conn`` that only one process can hold), reads
    them again and applies what is still pending, recording each step, all in that
    transaction. Raises ``StoreError`` naming the step that failed (nothing applied).
    """
    known = registered()
    applied = applied_versions(db)
    _check_known(applied, known, label)
    if not _pending(applied, known):
        return []
    with lock():
        db.execute(MIGRATIONS_DDL)
        applied = applied_versions(db)
        _check_known(applied, known, label)
        done = []
        for component, step in _pending(applied, known):
            _apply(db, component, step, label)
            done.append((component, step.version))
    return done


def _apply(db: MigrationDB, component: str, step: Migration, label: str) -> None:
    try:
        for statement in step.sql:
            db.execute(statement)
        if step.run is not None:
            step.run(db)
    except StoreError:
        raise
    except Exception as exc:  # the driver's error, or a bug in the migration: name the step
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"{label}: migration {step.version} of '{component}' ({step.description}) failed, "
                         f"nothing applied: {reason}") from None
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    db.execute("INSERT INTO {schema_migrations} (component, version, description, applied_at) VALUES (?, ?, ?, ?)",
               (component, step.version, step.description, now))


@contextlib.contextmanager
def sqlite_lock(conn: Any) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on a SQLite connection in autocommit mode."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
