"""Versioned schema migrations: a store written by the 0.1.0 release (a committed
``tether.db``) is upgraded in place, once, even with 8 processes opening it at once; a
store newer than this tether is refused; plugins add their own tables."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import pytest
from test_stores import PG_DSN, fresh_schema
from tether.errors import PluginError, StoreError
from tether.plugins import sql_migrations
from tether.plugins.sql_migrations import Migration, register_migrations
from tether.records import ModelVersion

FIXTURE = Path(__file__).parent / "fixtures" / "release-0.1.0" / "tether.db"
STORE_VERSIONS = [("store", 1), ("store", 2), ("store", 3)]


@pytest.fixture
def old_workspace(tmp_path) -> Path:
    """A workspace holding a copy of the 0.1.0 release's ``tether.db``."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    shutil.copy(FIXTURE, workspace / "tether.db")
    return workspace


@pytest.fixture
def components(monkeypatch):
    """Registrations made by a test are forgotten afterwards."""
    monkeypatch.setattr(sql_migrations, "_registry", dict(sql_migrations._registry))


def _raw(path: Path, sql: str, args=()) -> list[tuple]:
    # the committed fixture is opened immutable: reading it never touches the file
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True) if path == FIXTURE else sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _applied(path: Path, component: str = "store") -> list[tuple]:
    return _raw(path, "SELECT component, version, applied_at FROM schema_migrations WHERE component = ? "
                "ORDER BY version", (component,))


def test_the_fixture_is_a_release_store_without_migrations():
    tables = {row[0] for row in _raw(FIXTURE, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"records", "edges"}
    statuses = _raw(FIXTURE, "SELECT body FROM records WHERE kind = 'model_version'")
    assert len(statuses) == 2 and all('"status":"registered"' in body for (body,) in statuses)


def test_a_release_store_is_upgraded_in_place(old_workspace, host):
    store = host.backends.create("store", "sqlite", {"workspace": str(old_workspace)})
    try:
        versions = store.find("model_version", name="proj")
        assert [(v.version, v.status) for v in versions] == [(2, "experimental"), (1, "experimental")]
        assert isinstance(versions[0], ModelVersion) and versions[0].metrics["roc_auc"] > 0.5
        runs = store.find("run")
        assert len(runs) == 2 and {r.status for r in runs} == {"succeeded"}
        assert {e["kind"] for e in store.lineage(versions[0].id)["upstream"]} >= {"model", "evaluation"}
        store.put_metrics(runs[0].id, [("loss", 0.9, 1, "2026-01-01T00:00:00+00:00"),
                                       ("loss", 0.4, 2, "2026-01-01T00:00:01+00:00")])
        assert store.latest_metrics([runs[0].id]) == {runs[0].id: {"loss": 0.4}}
    finally:
        store.close()
    assert [row[:2] for row in _applied(old_workspace / "tether.db")] == STORE_VERSIONS


def test_the_upgrade_runs_once(old_workspace, host):
    first = host.backends.create("store", "sqlite", {"workspace": str(old_workspace)})
    first.find("run")
    first.close()
    db = old_workspace / "tether.db"
    applied, bodies = _applied(db), _raw(db, "SELECT id, body FROM records ORDER BY id")
    again = host.backends.create("store", "sqlite", {"workspace": str(old_workspace)})
    try:
        assert again.migrate() == []
        assert len(again.find("model_version")) == 2
    finally:
        again.close()
    assert _applied(db) == applied  # same rows, same applied_at: nothing ran twice
    assert _raw(db, "SELECT id, body FROM records ORDER BY id") == bodies


def _open_and_read(workspace: str, barrier, results) -> None:
    from tether.plugins.sqlite_store.store import SQLiteStore

    barrier.wait(timeout=60)
    store = SQLiteStore(workspace=workspace)
    results.put(sorted(v.status for v in store.find("model_version")))
    store.close()


def _in_eight_processes(target, arg) -> list:
    """What ``target(arg, barrier, results)`` puts on ``results`` in each of eight processes
    started together (every process must exit 0)."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=target, args=(arg, barrier, results)) for _ in range(8)]
    for proc in procs:
        proc.start()
    seen = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0] * 8
    return seen


def test_eight_processes_opening_a_release_store_at_once_upgrade_it_once(old_workspace):
    assert _in_eight_processes(_open_and_read, str(old_workspace)) == [["experimental", "experimental"]] * 8
    assert [row[:2] for row in _applied(old_workspace / "tether.db")] == STORE_VERSIONS


def test_a_store_newer_than_this_tether_is_refused_and_left_alone(old_workspace, host):
    db = old_workspace / "tether.db"
    upgraded = host.backends.create("store", "sqlite", {"workspace": str(old_workspace)})
    upgraded.find("run")
    upgraded.close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES ('store', 4, 'from the future', '2030-01-01')")
    conn.close()
    before = _raw(db, "SELECT id, body FROM records ORDER BY id")
    store = host.backends.create("store", "sqlite", {"workspace": str(old_workspace)})
    with pytest.raises(StoreError, match=r"metadata store '.*tether\.db' has schema version 4 of 'store', "
                                         r"newer than the 3 this tether knows; upgrade tether"):
        store.find("run")
    with pytest.raises(StoreError, match="newer than"):
        store.put(ModelVersion(id="mv-x-1", name="x", version=1, model_id="m"))
    assert _raw(db, "SELECT id, body FROM records ORDER BY id") == before


def test_a_plugin_adds_its_own_tables(tmp_path, host, components):
    store = host.backends.create("store", "sqlite", {"workspace": str(tmp_path)})
    store.find("run")  # nothing stored: no file yet
    store.put(ModelVersion(id="mv-x-1", name="x", version=1, model_id="m"))

    def backfill(db):
        db.executemany("INSERT INTO {spans} (trace_id, span_id, body) VALUES (?, ?, ?)", [("t1", "s1", "{}")])

    register_migrations("test-spans", [
        Migration(1, "spans table", sql=("CREATE TABLE IF NOT EXISTS {spans} (trace_id TEXT NOT NULL, "
                                         "span_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (trace_id, span_id))",
                                         "CREATE INDEX IF NOT EXISTS spans_by_trace ON {spans} (trace_id)")),
        Migration(2, "a first span", run=backfill),
    ])
    assert store.migrate() == [("test-spans", 1), ("test-spans", 2)]
    assert store.migrate() == []
    with store.sql_transaction() as db:
        db.execute("INSERT INTO {spans} (trace_id, span_id, body) VALUES (?, ?, ?)", ("t2", "s1", "{}"))
    assert store.sql_query("SELECT span_id FROM {spans} WHERE trace_id = ?", ("t2",)) == [("s1",)]
    with pytest.raises(RuntimeError), store.sql_transaction() as db:
        db.execute("INSERT INTO {spans} (trace_id, span_id, body) VALUES (?, ?, ?)", ("t3", "s1", "{}"))
        raise RuntimeError("rolled back")
    assert store.sql_query("SELECT span_id FROM {spans} WHERE trace_id = ?", ("t3",)) == []
    store.close()
    db = tmp_path / "tether.db"
    assert _raw(db, "SELECT trace_id, span_id FROM spans ORDER BY trace_id") == [("t1", "s1"), ("t2", "s1")]
    assert [row[:2] for row in _applied(db, "test-spans")] == [("test-spans", 1), ("test-spans", 2)]


def test_the_store_tables_come_first_whatever_the_component_names(tmp_path, host, components):
    def snapshot_count(db):  # reads the store's own table: fails if it does not exist yet
        (count,) = db.execute("SELECT COUNT(*) FROM {records}").fetchone()
        db.execute("CREATE TABLE {aa_counts} (n INTEGER)")
        db.execute("INSERT INTO {aa_counts} VALUES (?)", (count,))

    register_migrations("aa-counts", [Migration(1, "count records", run=snapshot_count)])
    store = host.backends.create("store", "sqlite", {"workspace": str(tmp_path)})
    store.put(ModelVersion(id="mv-x-1", name="x", version=1, model_id="m"))
    assert store.sql_query("SELECT n FROM {aa_counts}") == [(0,)]
    store.close()


def test_a_failing_migration_applies_nothing_and_names_the_step(tmp_path, host, components):
    host.backends.create("store", "sqlite", {"workspace": str(tmp_path)}).put(
        ModelVersion(id="mv-x-1", name="x", version=1, model_id="m"))
    register_migrations("broken", [
        Migration(1, "good table", sql=("CREATE TABLE {good} (a TEXT)",)),
        Migration(2, "bad statement", sql=("CREATE TABLE {nope} (",)),
    ])
    store = host.backends.create("store", "sqlite", {"workspace": str(tmp_path)})
    with pytest.raises(StoreError, match=r"migration 2 of 'broken' \(bad statement\) failed, nothing applied"):
        store.find("model_version")
    db = tmp_path / "tether.db"
    assert not _raw(db, "SELECT name FROM sqlite_master WHERE name = 'good'")  # rolled back with it
    assert [row[:2] for row in _applied(db)] == STORE_VERSIONS
    assert len(_raw(db, "SELECT id FROM records")) == 1


@pytest.mark.parametrize("versions", [[2], [1, 3], [2, 1]])
def test_migrations_must_be_numbered_from_one(versions, components):
    with pytest.raises(PluginError, match="must be numbered 1, 2, 3"):
        register_migrations("x", [Migration(v, "m", sql=("SELECT 1",)) for v in versions])


def test_a_component_name_is_checked(components):
    with pytest.raises(PluginError, match="migration component 'Bad Name'"):
        register_migrations("Bad Name", [Migration(1, "m", sql=("SELECT 1",))])


# -- PostgreSQL: a schema written by the release ---------------------------------------------

#: The tables the 0.1.0 release created in a PostgreSQL schema (before migrations).
RELEASE_PG_DDL = """
CREATE TABLE {s}.records (seq BIGSERIAL UNIQUE, id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT,
    version INTEGER, run_id TEXT, created_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX records_kind_name ON {s}.records (kind, name, created_at);
CREATE UNIQUE INDEX records_name_version ON {s}.records (kind, name, version) WHERE version IS NOT NULL;
CREATE TABLE {s}.edges (parent_id TEXT NOT NULL, child_id TEXT NOT NULL, relation TEXT NOT NULL, run_id TEXT,
    PRIMARY KEY (parent_id, child_id, relation));
CREATE INDEX edges_child ON {s}.edges (child_id);
"""


def _release_pg_schema(schema: str) -> None:
    """``schema`` as the release left it, holding the records of the SQLite fixture."""
    import psycopg

    records = _raw(FIXTURE, "SELECT id, kind, name, version, run_id, created_at, body FROM records ORDER BY rowid")
    edges = _raw(FIXTURE, "SELECT parent_id, child_id, relation, run_id FROM edges")
    with psycopg.connect(PG_DSN, autocommit=True) as conn, conn.transaction():
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(RELEASE_PG_DDL.format(s=schema))
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {schema}.records (id, kind, name, version, run_id, created_at, body) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s)", records)
            cur.executemany(f"INSERT INTO {schema}.edges VALUES (%s, %s, %s, %s)", edges)


def _pg_open_and_read(schema: str, barrier, results) -> None:
    from tether.contrib.postgres.store import PostgresStore

    barrier.wait(timeout=60)
    store = PostgresStore(dsn=PG_DSN, schema=schema)
    results.put(sorted(v.status for v in store.find("model_version")))
    store.close()


def test_a_release_postgres_schema_opened_by_eight_processes_is_upgraded_once(host):
    import psycopg

    with fresh_schema() as schema:
        _release_pg_schema(schema)
        assert _in_eight_processes(_pg_open_and_read, schema) == [["experimental", "experimental"]] * 8
        with psycopg.connect(PG_DSN) as conn:
            applied = conn.execute(f"SELECT component, version FROM {schema}.schema_migrations "
                                   "WHERE component = 'store' ORDER BY version").fetchall()
        assert applied == STORE_VERSIONS
        store = host.backends.create("store", "postgres", {"dsn": PG_DSN, "schema": schema})
        try:
            run_id = store.find("run")[0].id
            store.put_metrics(run_id, [("loss", 0.5, 1, "2026-01-01T00:00:00+00:00")])
            assert store.get_metrics(run_id) == [("loss", 0.5, 1, "2026-01-01T00:00:00+00:00")]
            assert len(store.lineage(store.find("model_version")[0].id)["upstream"]) > 0
        finally:
            store.close()


def test_a_postgres_schema_newer_than_this_tether_is_refused(host):
    import psycopg

    with fresh_schema() as schema:
        store = host.backends.create("store", "postgres", {"dsn": PG_DSN, "schema": schema})
        store.find("run")
        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {schema}.schema_migrations VALUES ('store', 9, 'future', '2030-01-01')")
        store = host.backends.create("store", "postgres", {"dsn": PG_DSN, "schema": schema})
        with pytest.raises(StoreError, match=f"postgres store 127.0.0.1:5432/test schema '{schema}' has schema "
                                             "version 9 of 'store', newer than the 3 this tether knows"):
            store.find("run")
        store.close()
