"""Online stores (SQLite built-in, Redis contrib against the real server): materialisation
is incremental, idempotent and all-or-nothing; lookups report freshness per value."""

from __future__ import annotations

import socket
import uuid

import numpy as np
import pandas as pd
import pytest
from conftest import require_server
from tether.errors import DataError, NotFoundError, StoreError
from tether.plugins.online_store import lookups as online

T0 = pd.Timestamp("2025-06-01", tz="UTC")


def feature_frame():
    return pd.DataFrame({
        "customer_id": [1, 1, 2, 3, 2],
        "feature_ts": T0 + pd.to_timedelta([0, 2, 1, 3, 5], unit="D"),
        "spend_7d": [10.0, 12.5, 7.0, np.nan, 8.0],
        "segment": ["a", "b", "c", "d", "e"],
    })


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, tmp_path, host):
    if request.param == "sqlite":
        backend = host.backends.create("online_store", "sqlite", {"workspace": str(tmp_path)})
        yield backend
        backend.close()
        return
    require_server("Redis", "127.0.0.1", 6379)
    prefix = f"tether-test:{uuid.uuid4().hex[:12]}:"
    backend = host.backends.create("online_store", "redis", {"url": "redis://127.0.0.1:6379/0", "prefix": prefix})
    yield backend
    keys = list(backend.client.scan_iter(match=f"{prefix}*"))
    if keys:
        backend.client.delete(*keys)
    backend.close()


def materialize(store, frame, **kwargs):
    return online.materialize(store, frame, view="customer", entity="customer_id", feature_time="feature_ts", **kwargs)


def test_latest_value_per_entity_with_freshness(store):
    counts = materialize(store, feature_frame())
    assert counts == {"written": 6, "unchanged": 0, "entities": 3}
    now = T0 + pd.Timedelta("6D")
    got = online.get_online_features(store, [2, 1, 99, 3], view="customer", now=now)
    assert got["customer_id"].tolist() == [2, 1, 99, 3]
    assert got["spend_7d"].tolist()[:2] == [8.0, 12.5] and np.isnan(got["spend_7d"][2]) and np.isnan(got["spend_7d"][3])
    assert [got["segment"][i] for i in (0, 1, 3)] == ["e", "b", "d"] and pd.isna(got["segment"][2])
    assert got["spend_7d__timestamp"][0] == T0 + pd.Timedelta("5D")
    assert got["spend_7d__age"].tolist()[:2] == [pd.Timedelta("1D"), pd.Timedelta("4D")]
    assert pd.isna(got["spend_7d__age"][2])  # entity 99 was never materialized
    expired = online.get_online_features(store, [2, 1], view="customer", now=now, ttl="2D")
    assert expired["spend_7d"][0] == 8.0 and np.isnan(expired["spend_7d"][1])
    with pytest.raises(NotFoundError, match=r"no values for entities \[99\]"):
        online.get_online_features(store, [1, 99], view="customer", now=now, strict=True)
    with pytest.raises(NotFoundError, match="has no feature 'nope'"):
        online.get_online_features(store, [1], view="customer", features=["nope"])
    with pytest.raises(NotFoundError, match="'other' has never been materialized"):
        online.get_online_features(store, [1], view="other")


def test_materialisation_is_incremental_and_idempotent(store):
    frame = feature_frame()
    materialize(store, frame)
    assert materialize(store, frame) == {"written": 0, "unchanged": 6, "entities": 3}
    older = pd.DataFrame({"customer_id": [1], "feature_ts": [T0 - pd.Timedelta("1D")],
                          "spend_7d": [-1.0], "segment": ["old"]})
    assert materialize(store, older)["written"] == 0  # an older value never overwrites a newer one
    newer = pd.DataFrame({"customer_id": [1], "feature_ts": [T0 + pd.Timedelta("9D")],
                          "spend_7d": [99.0], "segment": ["new"]})
    assert materialize(store, newer)["written"] == 2
    got = online.get_online_features(store, [1, 2], view="customer", now=T0 + pd.Timedelta("10D"))
    assert got["spend_7d"].tolist() == [99.0, 8.0] and got["segment"].tolist() == ["new", "e"]


def test_as_of_respects_availability_lag(store):
    counts = materialize(store, feature_frame(), as_of=T0 + pd.Timedelta("3D"), lag={"spend_7d": "1D", "segment": None})
    got = online.get_online_features(store, [1, 2, 3], view="customer", now=T0 + pd.Timedelta("3D"))
    assert got["spend_7d"].tolist()[:2] == [12.5, 7.0] and np.isnan(got["spend_7d"][2])  # day-3 value not yet known
    assert got["segment"].tolist() == ["b", "c", "d"]
    assert counts["written"] == 5


def test_bad_rows_write_nothing(store):
    frame = feature_frame()
    frame.loc[1, "feature_ts"] = pd.NaT
    with pytest.raises(DataError, match="'feature_ts' has 1 null feature timestamps"):
        materialize(store, frame)
    dup = pd.concat([feature_frame(), feature_frame().iloc[[0]]], ignore_index=True)
    with pytest.raises(DataError, match=r"1 rows repeat an \(customer_id, feature_ts\) pair"):
        materialize(store, dup)
    bad = feature_frame().astype({"segment": object})
    bad.loc[4, "segment"] = object()  # the last value cannot be encoded: no value may be written
    with pytest.raises(DataError, match="feature 'segment': value .* cannot be stored online"):
        materialize(store, bad)
    with pytest.raises(NotFoundError):
        online.get_online_features(store, [1, 2, 3], view="customer")
    assert store.view_info("customer") is None


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_down_is_one_clear_error(host):
    store = host.backends.create("online_store", "redis", {"url": f"redis://127.0.0.1:{closed_port()}/0",
                                                           "timeout": 0.5})
    with pytest.raises(StoreError, match=r"online store redis://127.0.0.1:\d+/0 .* is not reachable: .*start Redis"):
        materialize(store, feature_frame())
    with pytest.raises(StoreError, match="is not reachable"):
        online.get_online_features(store, [1], view="customer")


def test_sqlite_write_failure_rolls_back(tmp_path, host):
    store = host.backends.create("online_store", "sqlite", {"workspace": str(tmp_path)})
    materialize(store, feature_frame())
    rows = [("1", "spend_7d", "1000.0", (T0 + pd.Timedelta("30D")).value), ("2", "spend_7d", None, 0)]
    with pytest.raises(StoreError, match="nothing written"):  # NOT NULL fails on the second row
        store.write("customer", rows, entity="customer_id", features=["spend_7d"])
    got = online.get_online_features(store, [1], view="customer", now=T0 + pd.Timedelta("31D"))
    assert got["spend_7d"][0] == 12.5
    store.close()


@pytest.mark.redis
def test_redis_key_of_the_wrong_type_writes_nothing(host):
    require_server("Redis", "127.0.0.1", 6379)
    prefix = f"tether-test:{uuid.uuid4().hex[:12]}:"
    store = host.backends.create("online_store", "redis", {"prefix": prefix, "batch": 1})
    try:
        store.client.set(f"{prefix}customer:3", "not a hash")
        with pytest.raises(StoreError,
                           match=r"key 'tether-test:\w+:customer:3' holds a string, not a hash; nothing written"):
            materialize(store, feature_frame())
        assert sorted(store.client.scan_iter(match=f"{prefix}*")) == [f"{prefix}customer:3".encode()]
    finally:
        keys = list(store.client.scan_iter(match=f"{prefix}*"))
        if keys:
            store.client.delete(*keys)
        store.close()
