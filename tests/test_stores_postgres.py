"""The PostgreSQL store's pool and its errors, and a damaged SQLite file: one line each,
naming the server as host:port/db (never the password) or the file, nothing lost."""

from __future__ import annotations

import threading

import pytest
from test_stores import PG_DSN, fresh_schema, split
from tether.contrib.postgres.store import server_of
from tether.errors import StoreError
from tether.records import ModelVersion

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(("dsn", "server"), [
    ("postgresql://alice:pw@db.example:6543/reg", "db.example:6543/reg"),
    ("postgresql://alice@db.example/reg", "db.example:5432/reg"),
    ("host=10.0.0.5 port=5433 dbname=meta user=bob password=pw", "10.0.0.5:5433/meta"),
    ("host=h user=bob", "h:5432/bob"),
    ("postgresql://bob:pw@[::1:", "<unparsable dsn>"),
])
def test_the_server_is_named_without_the_password(dsn, server, monkeypatch):
    for var in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(var, raising=False)
    assert server_of(dsn) == server


def _error_of(host, dsn: str, **params) -> str:
    store = host.backends.create("store", "postgres", {"dsn": dsn, "connect_timeout": 3, **params})
    with pytest.raises(StoreError) as err:
        store.find("run")
    store.close()
    return str(err.value)


def test_a_closed_port_is_one_line_naming_the_server(host):
    message = _error_of(host, f"postgresql://postgres:{SECRET}@127.0.0.1:1/test")
    assert message.startswith("postgres store 127.0.0.1:1/test cannot connect: Connection refused")
    assert "\n" not in message and SECRET not in message


def test_an_unknown_database_is_one_line(host):
    # the local server trusts every user, so a wrong *password* is accepted there; an
    # unknown database or role is what it can refuse
    fresh_schema  # noqa: B018  # (the server check below is the same one the store tests use)
    from conftest import require_server

    require_server("PostgreSQL", "127.0.0.1", 5432)
    message = _error_of(host, f"postgresql://postgres:{SECRET}@127.0.0.1:5432/no_such_db")
    assert message == ('postgres store 127.0.0.1:5432/no_such_db cannot connect: '
                       'database "no_such_db" does not exist')


def test_an_unknown_user_is_one_line(host):
    from conftest import require_server

    require_server("PostgreSQL", "127.0.0.1", 5432)
    message = _error_of(host, f"host=127.0.0.1 port=5432 dbname=test user=nobody_here password={SECRET}")
    assert message == 'postgres store 127.0.0.1:5432/test cannot connect: role "nobody_here" does not exist'


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # e.g. a second, orphaned pool
def test_the_pool_serves_more_threads_than_connections(host):
    with fresh_schema() as schema:
        store = host.backends.create("store", "postgres", {"dsn": PG_DSN, "schema": schema, "pool_size": 2})
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                for j in range(5):
                    store.put(split(i * 10 + j))
                    store.put_versioned(lambda v: ModelVersion(id=f"mv-m-{v}", name="m", version=v, model_id="x"),
                                        kind="model_version", name="m")
                    store.put_metrics(f"run-{i}", [("loss", float(j), j, "2026-01-01T00:00:00+00:00")])
            except BaseException as exc:  # noqa: BLE001  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            assert errors == []
            import gc

            from psycopg_pool import ConnectionPool

            gc.collect()
            assert [p for p in gc.get_objects() if isinstance(p, ConnectionPool)] == [store._pool]  # one pool
            assert len(store.find("split")) == 40
            assert sorted(v.version for v in store.find("model_version")) == list(range(1, 41))
            assert store.latest_metrics([f"run-{i}" for i in range(8)]) == {f"run-{i}": {"loss": 4.0}
                                                                             for i in range(8)}
            assert store._pool.get_stats()["pool_max"] == 2
        finally:
            store.close()
        store.put(split(99))  # a closed store opens a new pool on next use
        assert store.get("split-99") is not None
        store.close()


@pytest.mark.parametrize(("param", "value"), [("pool_size", 1), ("pool_size", 101), ("connect_timeout", 0)])
def test_pool_parameters_are_checked(host, param, value):
    from tether.errors import ConfigError

    with pytest.raises(ConfigError, match=f"params: {param} must be a whole number"):
        host.backends.create("store", "postgres", {"dsn": PG_DSN, param: value})


def test_the_dsn_is_not_in_the_repr(host):
    store = host.backends.create("store", "postgres", {"dsn": f"postgresql://u:{SECRET}@h/db"})
    assert SECRET not in repr(store)


def test_a_corrupted_sqlite_file_is_one_line_and_left_untouched(tmp_path, host):
    garbage = bytes(range(256)) * 64
    (tmp_path / "tether.db").write_bytes(garbage)
    store = host.backends.create("store", "sqlite", {"workspace": str(tmp_path)})
    for attempt in (lambda: store.find("run"), lambda: store.put(split(1)),
                    lambda: store.put_metrics("run-1", [("a", 1.0, 0, "2026-01-01T00:00:00+00:00")])):
        with pytest.raises(StoreError) as err:
            attempt()
        message = str(err.value)
        assert message == (f"metadata store '{tmp_path / 'tether.db'}' cannot be opened: not a SQLite database "
                           "(corrupted or another kind of file); it was left untouched")
    assert (tmp_path / "tether.db").read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tether.db"]


def test_a_corrupted_store_fails_the_cli_with_one_line(tmp_path, tether_cli):
    (tmp_path / ".tether").mkdir()
    (tmp_path / ".tether" / "tether.db").write_bytes(b"not sqlite at all" * 100)
    result = tether_cli("runs", "ls", "--workspace", ".tether")
    assert result.exit_code == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tether: error: metadata store")
    assert "not a SQLite database" in lines[0]


def test_a_chain_on_a_postgres_server_that_is_down_fails_with_one_line(tmp_path, tether_cli):
    (tmp_path / "data.csv").write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    (tmp_path / "chain.yaml").write_text(
        "version: 1\nname: pgdown\n"
        "store: {plugin: postgres, params: {dsn: '${PG_DOWN_DSN}', connect_timeout: 2}}\n"
        "stages:\n  - {stage: snapshot, plugin: csv, params: {path: data.csv}}\n")
    ran = tether_cli("run", "chain.yaml", env={"PG_DOWN_DSN": f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"})
    assert ran.exit_code != 0, ran
    lines = ran.stderr.strip().splitlines()
    assert lines == ["tether: error: postgres store 127.0.0.1:1/test cannot connect: Connection refused; "
                     "Is the server running on that host and accepting TCP/IP connections?"], ran
    assert SECRET not in ran.stdout + ran.stderr
