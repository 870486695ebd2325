"""Metadata stores: the same contract for SQLite (a real file) and PostgreSQL (the real server)."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from contextlib import contextmanager

import pytest
from conftest import require_server
from tether.errors import ConfigError, StoreError
from tether.records import Finding, ModelVersion, ObjectRef, Run, SplitManifest

REF = ObjectRef(key="ab/cd.parquet", digest="blake3:" + "0" * 64, size=1)
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path, host):
    if request.param == "sqlite":
        st = host.backends.create("store", "sqlite", {"workspace": str(tmp_path)})
        yield st
        st.close()
        return
    with fresh_schema() as schema:
        st = host.backends.create("store", "postgres", {"dsn": PG_DSN, "schema": schema})
        yield st
        st.close()


def _pg_admin(dsn: str = PG_DSN):
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


@contextmanager
def fresh_schema(dsn: str = PG_DSN):
    """A unique schema name in the test database, dropped afterwards (the store creates it)."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    try:
        yield schema
    finally:
        with _pg_admin(dsn) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def fresh_database():
    """A unique database (so its ``public`` schema is ours), dropped afterwards; yields its dsn."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = f"t_{uuid.uuid4().hex[:10]}"
    with _pg_admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        with _pg_admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def split(i: int, snapshot: str = "snap-1") -> SplitManifest:
    return SplitManifest(id=f"split-{i}", snapshot_id=snapshot, strategy="random", params={"seed": i},
                         sizes={"train": 8, "test": 2}, assignment=REF,
                         findings=(Finding(check="dup", severity="warning", message="m"),))


def test_reading_an_empty_store_returns_nothing_and_creates_no_file(store, tmp_path):
    assert store.get("nope") is None
    assert store.find("split") == []
    assert store.lineage("nope") == {"upstream": [], "downstream": []}
    if store.name == "sqlite":
        assert not (tmp_path / "tether.db").exists()


def test_put_get_find_round_trip(store):
    records = [split(i) for i in range(3)]
    for record in records:
        store.put(record, parents=[("snap-1", "snapshot")], run_id="run-1")
    assert store.get("split-1") == records[1]
    assert store.get("split-1", kind="snapshot") is None
    assert [r.id for r in store.find("split")] == ["split-2", "split-1", "split-0"]
    assert [r.id for r in store.find("split", limit=1)] == ["split-2"]
    assert [r.id for r in store.find("split", prefix="split-1")] == ["split-1"]
    assert len(store.find("split")) == 3


def test_prefix_search_escapes_wildcards(store):
    store.put(split(1))
    assert store.find("split", prefix="split_") == []
    assert store.find("split", prefix="%") == []


def test_lineage_walks_both_ways(store):
    store.put(split(1), parents=[("snap-1", "snapshot")])
    store.put(ModelVersion(id="mv-a-1", name="a", version=1, model_id="model-1"),
              parents=[("model-1", "model")])
    store.put(Run(id="model-1", chain="c", chain_digest="d", status="succeeded"),  # any record kind works
              parents=[("split-1", "split")])
    graph = store.lineage("mv-a-1")
    assert [(e["parent"], e["depth"]) for e in graph["upstream"]] == [("model-1", 1), ("split-1", 2), ("snap-1", 3)]
    down = store.lineage("snap-1")["downstream"]
    assert [e["child"] for e in down] == ["split-1", "model-1", "mv-a-1"]


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store._insert(conn, split(1), parents=[("snap-1", "snapshot")])
        raise RuntimeError("crash mid-write")
    assert store.get("split-1") is None
    assert store.lineage("snap-1") == {"upstream": [], "downstream": []}


def test_replace_updates_a_run(store):
    store.put(Run(id="run-1", chain="c", chain_digest="d", status="running"))
    store.put(Run(id="run-1", chain="c", chain_digest="d", status="failed", error="x"), replace=True)
    assert store.get("run-1").status == "failed"
    assert len(store.find("run")) == 1


def test_versions_are_allocated_without_gaps_or_duplicates_under_concurrency(store, host, tmp_path):
    def build(version):
        return ModelVersion(id=f"mv-churn-{version}", name="churn", version=version, model_id="m")

    errors = []

    def register():
        # each thread uses its own connection, as separate processes would
        other = host.backends.create("store", store.name, _params_of(store))
        try:
            for _ in range(5):
                other.put_versioned(build, kind="model_version", name="churn")
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            other.close()

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    versions = sorted(r.version for r in store.find("model_version", name="churn"))
    assert versions == list(range(1, 21))


def _params_of(store):
    if store.name == "sqlite":
        return {"workspace": store.workspace}
    return {"dsn": store.dsn, "schema": store.schema}


def test_postgres_a_read_first_then_a_write_works_on_a_fresh_schema(host):
    with fresh_schema() as schema:
        st = host.backends.create("store", "postgres", {"dsn": PG_DSN, "schema": schema})
        try:
            assert st.get("split-1") is None
            assert st.find("split") == []
            st.put(split(1))
            assert [r.id for r in st.find("split")] == ["split-1"]
        finally:
            st.close()


def test_postgres_workspaces_in_two_schemas_of_one_database_stay_isolated(host):
    """One workspace in ``public``, one in its own schema: neither sees the other's records."""
    import psycopg

    with fresh_database() as dsn, fresh_schema(dsn) as schema:
        first = host.backends.create("store", "postgres", {"dsn": dsn, "schema": "public"})
        second = host.backends.create("store", "postgres", {"dsn": dsn, "schema": schema})
        try:
            first.put(split(1))
            assert second.find("split") == []  # a read first
            second.put(split(2))
            assert [r.id for r in first.find("split")] == ["split-1"]
            assert [r.id for r in second.find("split")] == ["split-2"]
            assert second.get("split-1") is None and first.get("split-2") is None
            with _pg_admin(dsn) as conn:  # the tables vanish under an open store: no fall-through to public
                conn.execute(f"DROP TABLE {schema}.records, {schema}.edges")
            with pytest.raises(psycopg.errors.UndefinedTable):
                second.put(split(3))
            assert [r.id for r in first.find("split")] == ["split-1"]
        finally:
            first.close()
            second.close()


def _create_one(dsn: str, schema: str, index: int, barrier) -> None:
    from tether.contrib.postgres.store import PostgresStore

    store = PostgresStore(dsn=dsn, schema=schema)
    barrier.wait(timeout=60)
    if index % 2:  # half of them read first
        store.find("split")
    store.put(split(index))
    store.close()


def test_postgres_concurrent_creates_on_a_fresh_schema_all_succeed(host):
    ctx = multiprocessing.get_context("spawn")
    with fresh_schema() as schema:
        barrier = ctx.Barrier(8)
        procs = [ctx.Process(target=_create_one, args=(PG_DSN, schema, i, barrier)) for i in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0] * 8
        st = host.backends.create("store", "postgres", {"dsn": PG_DSN, "schema": schema})
        try:
            assert sorted(r.id for r in st.find("split")) == [f"split-{i}" for i in range(8)]
        finally:
            st.close()


def test_postgres_down_is_a_clear_error(host):
    st = host.backends.create("store", "postgres", {"dsn": "postgresql://postgres@127.0.0.1:1/test",
                                                   "connect_timeout": 2})
    with pytest.raises(StoreError, match=r"postgres store 127\.0\.0\.1:1/test cannot connect: Connection refused; "
                                         r"Is the server running"):
        st.put(split(1))


def test_postgres_dsn_is_never_in_the_error(host):
    st = host.backends.create("store", "postgres", {"dsn": "postgresql://postgres:hunter2pass@127.0.0.1:1/test",
                                                   "connect_timeout": 2})
    with pytest.raises(StoreError) as err:
        st.get("x")
    assert "hunter2pass" not in str(err.value)


def test_postgres_schema_must_be_an_identifier(host):
    with pytest.raises(ConfigError, match="params: schema 'x; DROP TABLE y' must be a plain identifier"):
        host.backends.create("store", "postgres", {"dsn": PG_DSN, "schema": "x; DROP TABLE y"})


def test_a_chain_on_postgres_is_remembered_by_its_workspace(tmp_path, tether_cli):
    """A chain's store config is kept as written (no secrets); CLI commands reuse it."""
    with fresh_schema() as schema:
        (tmp_path / "data.csv").write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
        (tmp_path / "chain.yaml").write_text(
            "version: 1\nname: pgchain\n"
            f"store: {{plugin: postgres, params: {{dsn: '${{PG_TEST_DSN}}', schema: {schema}}}}}\n"
            "stages:\n  - {stage: snapshot, plugin: csv, params: {path: data.csv}}\n"
        )
        env = {"PG_TEST_DSN": PG_DSN}
        ran = tether_cli("run", "chain.yaml", env=env)
        assert ran.exit_code == 0, ran
        remembered = (tmp_path / ".tether" / "workspace.json").read_text()
        assert "${PG_TEST_DSN}" in remembered and PG_DSN not in remembered
        assert not (tmp_path / ".tether" / "tether.db").exists()  # nothing went to SQLite
        listed = tether_cli("runs", "ls", env=env)
        assert listed.exit_code == 0 and "pgchain" in listed.stdout and "succeeded" in listed.stdout
        unset = tether_cli("runs", "ls")
        assert unset.exit_code == 2 and "environment variable PG_TEST_DSN is not set" in unset.stderr


def test_a_default_workspace_writes_no_workspace_file(tmp_path, tether_cli):
    (tmp_path / "data.csv").write_text("a\n1\n2\n")
    (tmp_path / "chain.yaml").write_text(
        "version: 1\nstages:\n  - {stage: snapshot, plugin: csv, params: {path: data.csv}}\n")
    assert tether_cli("run", "chain.yaml").exit_code == 0
    assert not (tmp_path / ".tether" / "workspace.json").exists()


# --- concurrency: first opens, idempotent versioned writes -----------------------------------


def _first_open_and_write(workspace: str, index: int, barrier, errors: list) -> None:
    from tether.plugins.sqlite_store.store import SQLiteStore

    store = SQLiteStore(workspace=workspace)
    try:
        barrier.wait(timeout=60)
        store.put(split(index))
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        store.close()


def test_sqlite_concurrent_first_opens_of_a_fresh_file_all_succeed(tmp_path):
    """8 stores open one fresh file at once and write at once; repeated, never 'database is locked'."""
    for attempt in range(100):
        workspace = str(tmp_path / f"ws{attempt}")
        barrier, errors = threading.Barrier(8), []
        threads = [threading.Thread(target=_first_open_and_write, args=(workspace, i, barrier, errors))
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"attempt {attempt}: {errors}"
        from tether.plugins.sqlite_store.store import SQLiteStore

        check = SQLiteStore(workspace=workspace)
        assert sorted(r.id for r in check.find("split")) == [f"split-{i}" for i in range(8)]
        check.close()


def _catalogue(features: int):
    from tether.plugins.features.catalogue import define

    return [define(f"f{i:03d}", entity="customer_id", timestamp="ts", calculation=f"x * {i}")
            for i in range(features)]


def _apply_catalogue(store_name: str, params: dict, features: int, barrier) -> None:
    from tether.manager import PluginHost
    from tether.plugins.features.catalogue import apply_definitions

    store = PluginHost(entry_points=False).backends.create("store", store_name, params)
    definitions = _catalogue(features)
    barrier.wait(timeout=120)
    apply_definitions(store, definitions)
    store.close()


def test_concurrent_applies_of_one_catalogue_store_each_definition_once(store):
    """16 processes apply the same 200 definitions at once: 200 records, one version each."""
    from tether.plugins.features.catalogue import apply_definitions

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(16)
    procs = [ctx.Process(target=_apply_catalogue, args=(store.name, _params_of(store), 200, barrier))
             for _ in range(16)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * 16
    stored = store.find("feature")
    assert len(stored) == 200
    assert {(d.name, d.version) for d in stored} == {(f"f{i:03d}", 1) for i in range(200)}
    again = apply_definitions(store, _catalogue(200))
    assert {status for _, status in again} == {"unchanged"}
    assert len(store.find("feature")) == 200
