"""Eight processes register versions of one model and log metrics at once, on SQLite and
PostgreSQL: every version is numbered once (1..400, no gap, no duplicate) and every metric
value is stored."""

from __future__ import annotations

import json
import multiprocessing
import uuid

import pytest
from conftest import require_server

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PROCESSES, VERSIONS, METRICS = 8, 50, 1000


class Toy:
    """A picklable stand-in for a trained model; ``tag`` makes each one's bytes unique."""

    def __init__(self, tag: str) -> None:
        self.tag = tag


def _worker(root: str, index: int, barrier) -> None:
    import tether
    from tether.manager import PluginHost
    from tether.plugins.registry.api import register_model

    host = PluginHost(entry_points=False)
    barrier.wait(timeout=120)
    with tether.start_run(name=f"worker-{index}", workspace=root, host=host) as run:
        per_version = METRICS // VERSIONS
        for j in range(VERSIONS):
            register_model(run.context.workspace, "shared", Toy(f"{index}-{j}"), run_id=run.id)
            for k in range(per_version):
                step = j * per_version + k
                run.log_metric("loss", index + step / METRICS, step=step)


def _run_workers(root) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=_worker, args=(str(root), i, barrier)) for i in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=600)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES


def _check(root, host) -> None:
    from tether.workspace import Workspace

    with Workspace.open(host, root) as ws:
        versions = ws.store.find("model_version", name="shared")
        assert sorted(v.version for v in versions) == list(range(1, PROCESSES * VERSIONS + 1))
        assert len({v.model_id for v in versions}) == PROCESSES * VERSIONS
        runs = ws.store.find("run")
        assert len(runs) == PROCESSES and {r.status for r in runs} == {"succeeded"}
        for run in runs:
            index = int(run.chain.split("-")[1])
            rows = ws.store.get_metrics(run.id, "loss")
            assert [step for _, _, step, _ in rows] == list(range(METRICS))
            assert [value for _, value, _, _ in rows] == [index + s / METRICS for s in range(METRICS)]
        latest = ws.store.latest_metrics([r.id for r in runs])
        assert {r.id: latest[r.id]["loss"] for r in runs} == {r.id: r.metrics["loss"] for r in runs}


@pytest.mark.slow
def test_concurrent_registrations_and_metrics_on_sqlite(tmp_path, host):
    _run_workers(tmp_path / "ws")
    _check(tmp_path / "ws", host)


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_registrations_and_metrics_on_postgres(tmp_path, host):
    require_server("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:10]}"
    root = tmp_path / "ws"
    root.mkdir()
    (root / "workspace.json").write_text(json.dumps({"store": {"plugin": "postgres",
                                                                "params": {"dsn": PG_DSN, "schema": schema}}}))
    try:
        _run_workers(root)
        _check(root, host)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
