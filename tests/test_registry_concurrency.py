"""Eight processes registering 50 versions each of one model name, on SQLite and on
PostgreSQL: 400 distinct versions numbered 1..400 and an intact audit log."""

from __future__ import annotations

import multiprocessing
import uuid
from contextlib import contextmanager

import pytest
from conftest import require_server

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PROCESSES, EACH = 8, 50


def _register_many(root: str, store: dict, worker: int, barrier) -> None:
    from registry_helpers import estimator
    from tether.config import BackendConfig
    from tether.manager import PluginHost
    from tether.plugins.registry.api import register_model
    from tether.workspace import Workspace

    host = PluginHost(entry_points=False)
    with Workspace.open(host, root, storage=BackendConfig(plugin="local"),
                        store=BackendConfig(plugin=store["plugin"], params=store["params"])) as ws:
        barrier.wait(timeout=120)
        for i in range(EACH):
            register_model(ws, "churn", estimator(worker * 1000 + i + 1), owner=f"worker-{worker}")


@contextmanager
def _schema():
    require_server("PostgreSQL", "127.0.0.1", 5432)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    try:
        yield schema
    finally:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def _store(kind: str):
    if kind == "sqlite":
        yield {"plugin": "sqlite", "params": {}}
        return
    with _schema() as schema:
        yield {"plugin": "postgres", "params": {"dsn": PG_DSN, "schema": schema}}


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_registrations_get_distinct_gapless_versions(kind, tmp_path, host):
    from tether import audit
    from tether.config import BackendConfig
    from tether.workspace import Workspace

    root = tmp_path / ".tether"
    ctx = multiprocessing.get_context("spawn")
    with _store(kind) as store:
        barrier = ctx.Barrier(PROCESSES)
        procs = [ctx.Process(target=_register_many, args=(str(root), store, w, barrier)) for w in range(PROCESSES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=600)
        assert [p.exitcode for p in procs] == [0] * PROCESSES
        with Workspace.open(host, root, storage=BackendConfig(plugin="local"),
                            store=BackendConfig(plugin=store["plugin"], params=store["params"])) as ws:
            versions = ws.store.find("model_version", name="churn")
            assert sorted(v.version for v in versions) == list(range(1, PROCESSES * EACH + 1))
            assert sorted(v.id for v in versions) == sorted(f"mv-churn-{n}" for n in range(1, PROCESSES * EACH + 1))
            assert len({v.model_id for v in versions}) == PROCESSES * EACH
            assert {v.owner for v in versions} == {f"worker-{w}" for w in range(PROCESSES)}
            entries = audit.entries(ws.store)
            assert [e.version for e in entries] == list(range(1, PROCESSES * EACH + 1))
            assert sorted(e.subject for e in entries) == sorted(v.id for v in versions)
            assert audit.verify(ws.store) == []


def _change_at_once(root: str, store: dict, worker: int, barrier, results) -> None:
    from tether.config import BackendConfig
    from tether.manager import PluginHost
    from tether.plugins.registry import state
    from tether.workspace import Workspace

    host = PluginHost(entry_points=False)
    with Workspace.open(host, root, storage=BackendConfig(plugin="local"),
                        store=BackendConfig(plugin=store["plugin"], params=store["params"])) as ws:
        mv = state.resolve_ref(ws.store, f"churn@{worker % 2 + 1}")
        barrier.wait(timeout=120)
        outcome = []
        for change in (lambda: state.transition(ws.store, state.resolve_ref(ws.store, "churn@1"), "candidate",
                                                actor=f"w{worker}"),
                       lambda: state.set_alias(ws.store, mv, "champion", actor=f"w{worker}")):
            try:
                outcome.append(change().id)
            except Exception as exc:  # noqa: BLE001 - reported to the test
                outcome.append(f"{type(exc).__name__}: {exc}")
        results.put(outcome)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_changes_are_checked_against_each_other(kind, tmp_path, host):
    """Eight processes promote one version and claim one alias at once: one of each wins; the
    others are refused by the checks, which see the winner's change."""
    from registry_helpers import estimator
    from tether import audit
    from tether.config import BackendConfig
    from tether.plugins.registry import state
    from tether.plugins.registry.api import register_model
    from tether.workspace import Workspace

    root = tmp_path / ".tether"
    ctx = multiprocessing.get_context("spawn")
    with _store(kind) as store:
        def open_ws():
            return Workspace.open(host, root, storage=BackendConfig(plugin="local"),
                                  store=BackendConfig(plugin=store["plugin"], params=store["params"]))

        with open_ws() as ws:
            for c in (1.0, 2.0):
                register_model(ws, "churn", estimator(c))
        barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
        procs = [ctx.Process(target=_change_at_once, args=(str(root), store, w, barrier, results))
                 for w in range(PROCESSES)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0] * PROCESSES
        promoted = [o[0] for o in outcomes if o[0].startswith("mt-")]
        assert promoted == ["mt-churn-1"]
        assert all(o[0] == "PolicyError: mv-churn-1 is already candidate" for o in outcomes if o[0] != "mt-churn-1")
        aliased = [o[1] for o in outcomes if o[1].startswith("ma-")]
        assert len(set(aliased)) == 1  # one alias record; a process of the same version may get it back
        assert all("is held by" in o[1] for o in outcomes if not o[1].startswith("ma-"))
        with open_ws() as ws:
            assert len(state.load(ws.store, "churn").transitions) == 1
            assert len(state.load(ws.store, "churn").aliases) == 1
            assert audit.verify(ws.store) == []
            assert [e.action for e in audit.entries(ws.store)].count("model.transition") == 1
