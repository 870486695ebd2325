"""Metric series and immutable kinds, on SQLite (a real file) and PostgreSQL (the real server)."""

from __future__ import annotations

import math

import pytest
from test_stores import store  # noqa: F401  # the parametrized sqlite/postgres fixture
from tether.errors import DataError, StoreError
from tether.records import ModelVersion, Run

T0 = "2026-03-01T10:00:00+00:00"
T1 = "2026-03-01T10:00:01+00:00"
T2 = "2026-03-01T10:00:02+00:00"


def test_metrics_round_trip_in_order(store):  # noqa: F811
    store.put_metrics("run-a", [("loss", 0.5, 2, T2), ("loss", 0.9, 1, T1), ("auc", 0.7, None, T0),
                                ("loss", 1.2, None, T0)])
    store.put_metrics("run-b", [("loss", 3.0, 1, T0)])
    assert store.get_metrics("run-a") == [("auc", 0.7, None, T0), ("loss", 1.2, None, T0),
                                          ("loss", 0.9, 1, T1), ("loss", 0.5, 2, T2)]
    assert store.get_metrics("run-a", "auc") == [("auc", 0.7, None, T0)]
    assert store.get_metrics("run-nope") == []


def test_latest_metrics_takes_the_highest_step_then_the_latest_time(store):  # noqa: F811
    store.put_metrics("run-a", [("loss", 0.4, 7, T0), ("loss", 0.9, 3, T2), ("loss", 5.0, None, T2),
                                ("acc", 0.1, 1, T0), ("acc", 0.2, 1, T1), ("final", 1.0, None, T0)])
    store.put_metrics("run-a", [("final", 2.0, None, T0)])  # same step and time: written last wins
    store.put_metrics("run-b", [("loss", 3.0, 1, T0)])
    assert store.latest_metrics(["run-a", "run-b", "run-c"]) == {
        "run-a": {"loss": 0.4, "acc": 0.2, "final": 2.0}, "run-b": {"loss": 3.0}, "run-c": {}}


def test_many_rows_in_one_call_are_all_stored(store):  # noqa: F811
    rows = [(f"m{i % 7}", float(i), i, T0) for i in range(5000)]
    store.put_metrics("run-a", rows)
    stored = store.get_metrics("run-a")
    assert len(stored) == 5000
    assert sorted(stored) == sorted(rows)
    assert store.latest_metrics(["run-a"])["run-a"]["m0"] == 4998.0


def test_nan_and_infinity_survive(store):  # noqa: F811
    store.put_metrics("run-a", [("a", float("nan"), 1, T0), ("b", float("inf"), 1, T0)])
    (a, b) = store.get_metrics("run-a")
    assert math.isnan(a[1]) and b[1] == math.inf
    assert math.isnan(store.latest_metrics(["run-a"])["run-a"]["a"])


@pytest.mark.parametrize(("row", "problem"), [
    (("loss", "high", 1, T0), r"metrics\[1\]\.value \(loss\) of run 'run-a': not a number"),
    (("", 1.0, 1, T0), r"metrics\[1\]\.key of run 'run-a': must be a non-empty string"),
    (("loss", 1.0, 1.5, T0), r"metrics\[1\]\.step \(loss\) of run 'run-a': must be an integer or None"),
    (("loss", 1.0, 1, "yesterday"), r"metrics\[1\]\.timestamp \(loss\) of run 'run-a': not an ISO-8601 time"),
    (("loss", 1.0), r"metrics\[1\] of run 'run-a': expected \(key, value, step, timestamp\)"),
])
def test_a_bad_row_is_named_and_nothing_is_written(store, row, problem):  # noqa: F811
    with pytest.raises(DataError, match=problem):
        store.put_metrics("run-a", [("ok", 1.0, 0, T0), row])
    assert store.get_metrics("run-a") == []


def test_model_versions_and_audit_entries_cannot_be_replaced(store):  # noqa: F811
    mv = ModelVersion(id="mv-churn-1", name="churn", version=1, model_id="m", description="first")
    store.put(mv)
    with pytest.raises(StoreError, match="model_version 'mv-churn-1' is immutable: it cannot be replaced"):
        store.put(ModelVersion(id="mv-churn-1", name="churn", version=1, model_id="m", description="edited"),
                  replace=True)
    assert store.get("mv-churn-1").description == "first"
    run = Run(id="run-1", chain="c", chain_digest="d", status="running")
    store.put(run)
    store.put(Run(id="run-1", chain="c", chain_digest="d", status="succeeded"), replace=True)  # runs still finish
    assert store.get("run-1").status == "succeeded"


def _register_and_log(store_name: str, params: dict, worker: int, barrier) -> None:
    from tether.manager import PluginHost
    from tether.plugins.registry.registry import register_version
    from tether.records import ObjectRef, TrainedModel

    opened = PluginHost(entry_points=False).backends.create("store", store_name, params)
    barrier.wait(timeout=120)
    for i in range(50):
        ref = ObjectRef(key=f"m/{worker}-{i}.pkl", digest="blake3:" + f"{worker:08x}{i:08x}" + "0" * 48, size=1)
        model = TrainedModel(id=TrainedModel.id_for(ref), artifact=ref, framework="sklearn", estimator="X")
        register_version(opened, name="churn", model=model)
        opened.put_metrics(f"run-{worker}", [("loss", float(i * 20 + j), i * 20 + j, T0) for j in range(20)])
    opened.close()


def test_eight_processes_register_400_versions_and_log_8000_metrics(store):  # noqa: F811
    """8 processes each register 50 versions of one model and log 1,000 metric values:
    versions 1..400 exactly, every value present, the audit log intact."""
    import multiprocessing

    from test_stores import _params_of
    from tether import audit

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_register_and_log, args=(store.name, _params_of(store), w, barrier))
             for w in range(8)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=600)
    assert [proc.exitcode for proc in procs] == [0] * 8
    versions = store.find("model_version", name="churn")
    assert sorted(v.version for v in versions) == list(range(1, 401))
    assert len({v.model_id for v in versions}) == 400
    for worker in range(8):
        assert [row[2] for row in store.get_metrics(f"run-{worker}", "loss")] == list(range(1000))
    assert audit.verify(store) == []
    assert len(audit.entries(store)) == 400
