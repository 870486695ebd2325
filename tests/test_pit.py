"""Point-in-time joins: a property test against a brute-force reference, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tether.errors import ConfigError, DataError
from tether.plugins.features.pit import FeatureTable, point_in_time_join

BASE = pd.Timestamp("2025-03-01 12:00", tz="UTC")


def reference_join(entities, features, *, entity, prediction_time, feature_time, lag, ttl, columns):
    """The rules, spelled out row by row: the latest row with t + lag <= p, expired after ttl."""
    lag = pd.Timedelta(lag or 0)
    ttl = None if ttl is None else pd.Timedelta(ttl)
    out = {c: [] for c in columns}
    for key, p in zip(entities[entity], entities[prediction_time]):
        best = None
        for _, row in features.iterrows():
            if pd.isna(key) or row[entity] != key or row[feature_time] + lag > p:
                continue
            if best is None or row[feature_time] > best[feature_time]:
                best = row
        if best is not None and ttl is not None and p - best[feature_time] > ttl:
            best = None
        for c in columns:
            out[c].append(np.nan if best is None else best[c])
    return pd.DataFrame({c: pd.array(v, dtype="Float64") for c, v in out.items()})


def as_float(frame, columns):
    return pd.DataFrame({c: pd.array(frame[c].astype("float64"), dtype="Float64") for c in columns})


AWARE = ["UTC", "America/New_York", "Asia/Kolkata"]
zones = st.sampled_from([None, *AWARE])


@st.composite
def join_case(draw):
    n_ent = draw(st.integers(0, 12))
    n_feat = draw(st.integers(0, 25))
    entity_zone = draw(zones)
    feature_zone = draw(st.sampled_from(AWARE)) if entity_zone else None  # both naive, or both aware
    minutes = st.integers(0, 40)  # a narrow range: ties between times are common
    keys = st.one_of(st.integers(0, 3), st.none()) if draw(st.booleans()) else st.integers(0, 4)
    values = st.one_of(st.floats(-5, 5, allow_nan=False), st.none())

    def stamp(offsets, zone):
        ts = pd.Series(BASE + pd.to_timedelta(offsets, unit="min"), dtype="datetime64[ns, UTC]")
        return ts.dt.tz_localize(None) if zone is None else ts.dt.tz_convert(zone)

    entities = pd.DataFrame({
        "customer": pd.array(draw(st.lists(keys, min_size=n_ent, max_size=n_ent)), dtype="Int64"),
        "predicted_at": stamp(draw(st.lists(minutes, min_size=n_ent, max_size=n_ent)), entity_zone),
        "label": np.arange(n_ent) % 2,
    })
    features = pd.DataFrame({
        "customer": draw(st.lists(st.integers(0, 4), min_size=n_feat, max_size=n_feat)),
        "ts": stamp(draw(st.lists(minutes, min_size=n_feat, max_size=n_feat)), feature_zone),
        "spend": pd.array(draw(st.lists(values, min_size=n_feat, max_size=n_feat)), dtype="Float64"),
        "visits": pd.array(draw(st.lists(values, min_size=n_feat, max_size=n_feat)), dtype="Float64"),
    }).drop_duplicates(["customer", "ts"], keep="last")
    lag = draw(st.sampled_from([None, "0min", "1min", "5min", "1h"]))
    ttl = draw(st.sampled_from([None, "0min", "3min", "10min"]))
    return entities, features, lag, ttl


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(join_case())
def test_join_matches_brute_force_reference(case):
    entities, features, lag, ttl = case
    got = point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at",
                             feature_time="ts", lag=lag, ttl=ttl)
    # the entity table comes back unchanged, rows in order, features appended
    pd.testing.assert_frame_equal(got[list(entities.columns)], entities.reset_index(drop=True))
    assert list(got.columns) == [*entities.columns, "spend", "visits"]
    want = reference_join(entities, features, entity="customer", prediction_time="predicted_at",
                          feature_time="ts", lag=lag, ttl=ttl, columns=["spend", "visits"])
    pd.testing.assert_frame_equal(as_float(got, ["spend", "visits"]), want)


@settings(max_examples=60, deadline=None)
@given(join_case(), st.randoms(use_true_random=False))
def test_input_order_does_not_matter(case, rnd):
    entities, features, lag, ttl = case
    shuffled = features.sample(frac=1.0, random_state=rnd.randint(0, 2**31))
    kwargs = {"entity": "customer", "prediction_time": "predicted_at", "feature_time": "ts", "lag": lag, "ttl": ttl}
    pd.testing.assert_frame_equal(point_in_time_join(entities, features, **kwargs),
                                  point_in_time_join(entities, shuffled, **kwargs))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(join_case(), st.lists(st.integers(0, 30), max_size=8))
def test_duplicates_last_matches_the_reference_on_deduplicated_input(case, repeats):
    entities, features, lag, ttl = case
    if len(features):  # append later copies of some rows with new values: the last one must win
        extra = features.iloc[[r % len(features) for r in repeats]].copy()
        extra["spend"] = pd.array(np.arange(len(extra), dtype=float) + 100.0, dtype="Float64")
        features = pd.concat([features, extra], ignore_index=True)
    got = point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at",
                             feature_time="ts", lag=lag, ttl=ttl, duplicates="last")
    want = reference_join(entities, features.drop_duplicates(["customer", "ts"], keep="last"), entity="customer",
                          prediction_time="predicted_at", feature_time="ts", lag=lag, ttl=ttl,
                          columns=["spend", "visits"])
    pd.testing.assert_frame_equal(as_float(got, ["spend", "visits"]), want)


def frames():
    entities = pd.DataFrame({"customer": ["a", "a", "b", "zz"],
                             "predicted_at": BASE + pd.to_timedelta([0, 60, 60, 60], unit="min")})
    features = pd.DataFrame({"customer": ["a", "a", "a", "b"],
                             "ts": BASE + pd.to_timedelta([-120, -30, 30, -10], unit="min"),
                             "spend": [1.0, 2.0, 3.0, 4.0]})
    return entities, features


def test_lag_ttl_and_unknown_entity_by_hand():
    entities, features = frames()
    got = point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at", feature_time="ts")
    assert got["spend"].tolist()[:3] == [2.0, 3.0, 4.0] and np.isnan(got["spend"][3])  # "zz" has no history
    lagged = point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at",
                                feature_time="ts", lag="30min")
    assert lagged["spend"].tolist()[:3] == [2.0, 3.0, 4.0]  # 30 + 30 = 60: available exactly at prediction
    lagged = point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at",
                                feature_time="ts", lag="31min")
    assert lagged["spend"].tolist()[:3] == [1.0, 2.0, 4.0]
    expired = point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at",
                                 feature_time="ts", lag="31min", ttl="90min")  # age 90min: kept
    assert np.isnan(expired["spend"][0]) and expired["spend"].tolist()[1:3] == [2.0, 4.0]


def test_per_column_lag_several_tables_and_available_at():
    entities, features = frames()
    features["visits"] = [10.0, 20.0, 30.0, 40.0]
    other = pd.DataFrame({"customer": ["a"], "ts": [BASE - pd.Timedelta("1h")], "spend": [99.0],
                          "known_at": [BASE + pd.Timedelta("2h")]})
    got = point_in_time_join(entities, [
        FeatureTable(frame=features, feature_time="ts", lag={"visits": "31min"}),
        FeatureTable(frame=other, feature_time="ts", available_at="known_at", prefix="late_"),
    ], entity="customer", prediction_time="predicted_at")
    assert got["spend"].tolist()[:3] == [2.0, 3.0, 4.0]
    assert got["visits"].tolist()[:3] == [10.0, 20.0, 40.0]
    assert got["late_spend"].isna().all()  # recorded an hour early but only known two hours later


def test_null_feature_timestamps_are_an_error():
    entities, features = frames()
    features.loc[1, "ts"] = pd.NaT
    with pytest.raises(DataError, match="'ts' has 1 null feature timestamps"):
        point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at", feature_time="ts")


def test_null_prediction_timestamps_are_an_error():
    entities, features = frames()
    entities.loc[0, "predicted_at"] = pd.NaT
    with pytest.raises(DataError, match="'predicted_at' has 1 null prediction timestamps"):
        point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at", feature_time="ts")


def test_duplicate_entity_timestamp_rows_are_an_error_or_last_wins():
    entities, features = frames()
    features = pd.concat([features, features.iloc[[1]].assign(spend=-2.0)], ignore_index=True)
    with pytest.raises(DataError, match=r"feature table has 1 rows repeating the \(customer, ts\) of a row the join "
                                        r"uses \(e.g. customer='a'\), so the value at that time is ambiguous"):
        point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at", feature_time="ts")
    # a duplicate no entity row can use changes nothing and is not an error
    unused = pd.concat([frames()[1], frames()[1].iloc[[2]].assign(spend=-3.0)], ignore_index=True)
    got = point_in_time_join(entities.iloc[:1], unused, entity="customer", prediction_time="predicted_at",
                             feature_time="ts")
    assert got["spend"].tolist() == [2.0]
    got = point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at",
                             feature_time="ts", duplicates="last")
    assert got["spend"].tolist()[:3] == [-2.0, 3.0, 4.0]


def test_naive_and_aware_timestamps_are_not_mixed():
    entities, features = frames()
    features["ts"] = features["ts"].dt.tz_localize(None)
    with pytest.raises(DataError, match="'predicted_at' is zone-aware but 'ts' is naive"):
        point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at", feature_time="ts")


def test_bad_arguments_name_what_to_fix():
    entities, features = frames()
    with pytest.raises(DataError, match="has no column 'when'"):
        point_in_time_join(entities, features, entity="customer", prediction_time="when", feature_time="ts")
    with pytest.raises(ConfigError, match="lag 'soon' is not a duration"):
        point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at",
                           feature_time="ts", lag="soon")
    with pytest.raises(ConfigError, match="negative"):
        point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at",
                           feature_time="ts", ttl="-1h")
    with pytest.raises(DataError, match="'customer' is already in the entity table"):
        point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at",
                           feature_time="ts", columns=["customer"])
    with pytest.raises(DataError, match="key column 'customer' is (string|large_string) in the entity table "
                                        "but int64 in the feature table"):
        point_in_time_join(entities, features.assign(customer=1), entity="customer", prediction_time="predicted_at",
                           feature_time="ts")
    entities["predicted_at"] = entities["predicted_at"].astype(str)
    with pytest.raises(DataError, match="must hold timestamps"):
        point_in_time_join(entities, features, entity="customer", prediction_time="predicted_at", feature_time="ts")


def test_arrow_input_and_empty_tables():
    import pyarrow as pa

    entities, features = frames()
    got = point_in_time_join(pa.Table.from_pandas(entities), pa.Table.from_pandas(features), entity="customer",
                             prediction_time="predicted_at", feature_time="ts")
    assert got["spend"].tolist()[:3] == [2.0, 3.0, 4.0]
    empty = point_in_time_join(entities.iloc[:0], features, entity="customer", prediction_time="predicted_at",
                               feature_time="ts")
    assert len(empty) == 0 and "spend" in empty
    none = point_in_time_join(entities, features.iloc[:0], entity="customer", prediction_time="predicted_at",
                              feature_time="ts")
    assert none["spend"].isna().all()


def generated(events, entities, rows, seed):
    """Events and feature rows on random entities and seconds; some values missing."""
    rng = np.random.default_rng(seed)
    start, span = pd.Timestamp("2025-01-01", tz="UTC"), 90 * 86_400
    ev = pd.DataFrame({"event_id": np.arange(events), "entity_id": rng.integers(0, entities, events),
                       "event_ts": start + pd.to_timedelta(rng.integers(0, span, events), unit="s")})
    ft = pd.DataFrame({"entity_id": rng.integers(0, entities + 5, rows),  # some entities have no events
                       "feature_ts": start + pd.to_timedelta(rng.integers(-span // 4, span, rows), unit="s")})
    for name in ("f0", "f1"):
        values = rng.normal(size=rows)
        values[rng.random(rows) < 0.05] = np.nan
        ft[name] = values
    return ev, ft.drop_duplicates(["entity_id", "feature_ts"], ignore_index=True)


def duckdb_asof(ev, ft, lag, ttl):
    """The plain DuckDB ASOF LEFT JOIN a user would write, lag in the condition and TTL as a CASE."""
    import duckdb

    cond = "e.event_ts >= f.feature_ts" + (f" + INTERVAL '{pd.Timedelta(lag).total_seconds()} seconds'" if lag else "")
    keep = "" if ttl is None else f"e.event_ts - f.feature_ts <= INTERVAL '{pd.Timedelta(ttl).total_seconds()} seconds'"
    cols = ", ".join(f"CASE WHEN {keep} THEN f.{c} END AS {c}" if keep else f"f.{c}" for c in ("f0", "f1"))
    con = duckdb.connect()
    out = con.sql(f"SELECT e.event_id, {cols} FROM ev e ASOF LEFT JOIN ft f "
                  f"ON e.entity_id = f.entity_id AND {cond}").df()
    con.close()
    return out.sort_values("event_id", ignore_index=True)


def pandas_asof(ev, ft, lag, ttl):
    avail = (ft["feature_ts"] + pd.Timedelta(lag or 0)).astype(ev["event_ts"].dtype)
    out = pd.merge_asof(ev.sort_values("event_ts"), ft.assign(avail=avail).sort_values("avail"),
                        left_on="event_ts", right_on="avail", by="entity_id")
    if ttl is not None:
        out.loc[out["event_ts"] - out["feature_ts"] > pd.Timedelta(ttl), ["f0", "f1"]] = np.nan
    return out.sort_values("event_id", ignore_index=True)


@pytest.mark.parametrize("size", [(2_000, 300, 8_000), (60_000, 5_000, 200_000)])
@pytest.mark.parametrize("lag,ttl", [(None, None), ("1D", "10D"), ("90min", None), (None, "3D")])
def test_join_agrees_with_duckdb_asof_and_merge_asof(size, lag, ttl):
    ev, ft = generated(*size, seed=sum(size))
    got = point_in_time_join(ev, ft, entity="entity_id", prediction_time="event_ts", feature_time="feature_ts",
                             lag=lag, ttl=ttl)
    pd.testing.assert_frame_equal(got[list(ev.columns)], ev)  # entity rows unchanged, in order
    got = got[["event_id", "f0", "f1"]]
    for other in (duckdb_asof(ev, ft, lag, ttl), pandas_asof(ev, ft, lag, ttl)):
        other = other[["event_id", "f0", "f1"]].astype({"f0": "float64", "f1": "float64"})
        pd.testing.assert_frame_equal(got, other)
        for c in ("f0", "f1"):  # checksums per feature
            assert (got[c].isna().sum(), round(got[c].sum(), 6)) == (other[c].isna().sum(), round(other[c].sum(), 6))
    assert 0 < got["f0"].isna().mean() < 1


@pytest.mark.parametrize("lag,ttl", [(None, None), ("1D", "10D")])
def test_sorted_join_and_duckdb_fallback_agree(lag, ttl):
    """Two key columns and odd key types take DuckDB's ASOF path; the answers are the same."""
    ev, ft = generated(5_000, 400, 20_000, seed=7)
    kwargs = {"prediction_time": "event_ts", "feature_time": "feature_ts", "lag": lag, "ttl": ttl}
    want = point_in_time_join(ev, ft, entity="entity_id", **kwargs)
    two_keys = point_in_time_join(ev.assign(shard=1), ft.assign(shard=1), entity=["entity_id", "shard"], **kwargs)
    pd.testing.assert_frame_equal(two_keys.drop(columns="shard"), want)
    sparse = point_in_time_join(ev.assign(entity_id=ev["entity_id"] * 10**15), ft.assign(entity_id=ft["entity_id"]
                                * 10**15), entity="entity_id", **kwargs)  # dictionary codes instead of shifts
    pd.testing.assert_frame_equal(sparse[["f0", "f1"]], want[["f0", "f1"]])
    text = point_in_time_join(ev.assign(entity_id=ev["entity_id"].astype(str)),
                              ft.assign(entity_id=ft["entity_id"].astype(str)), entity="entity_id", **kwargs)
    pd.testing.assert_frame_equal(text[["f0", "f1"]], want[["f0", "f1"]])
    nanos = ft.assign(feature_ts=ft["feature_ts"].astype("datetime64[ns, UTC]") + pd.Timedelta(1, "ns"))
    fine = point_in_time_join(ev.assign(event_ts=ev["event_ts"].astype("datetime64[ns, UTC]")), nanos,
                              entity="entity_id", **kwargs)  # ns times: a finer unit, or DuckDB
    brute = point_in_time_join(ev.assign(event_ts=ev["event_ts"].astype("datetime64[ns, UTC]"), shard=1),
                               nanos.assign(shard=1), entity=["entity_id", "shard"], **kwargs)
    pd.testing.assert_frame_equal(fine[["f0", "f1"]], brute[["f0", "f1"]])


def test_wide_unsigned_and_mixed_keys():
    ev, ft = generated(500, 50, 2_000, seed=3)
    kwargs = {"prediction_time": "event_ts", "feature_time": "feature_ts"}
    want = point_in_time_join(ev, ft, entity="entity_id", **kwargs)
    big = np.uint64(2**63 + 5)
    got = point_in_time_join(ev.assign(entity_id=ev["entity_id"].astype("uint64") + big),
                             ft.assign(entity_id=ft["entity_id"].astype("uint64") + big), entity="entity_id", **kwargs)
    pd.testing.assert_frame_equal(got[["f0", "f1"]], want[["f0", "f1"]])
    got = point_in_time_join(ev.assign(entity_id=ev["entity_id"].astype("int32")), ft, entity="entity_id", **kwargs)
    pd.testing.assert_frame_equal(got[["f0", "f1"]], want[["f0", "f1"]])
    got = point_in_time_join(ev.assign(entity_id=ev["entity_id"].astype("float64") + 0.5), ft, entity="entity_id",
                             **kwargs)  # no float key equals an integer one: all missing
    assert got["f0"].isna().all()
