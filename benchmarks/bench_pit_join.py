"""Point-in-time join benchmark: tether vs pandas ``merge_asof`` vs a bare DuckDB ASOF JOIN.

One labelled event table (entity, prediction time, label) is joined against one feature
table (entity, feature timestamp, 5 features) with an availability lag of 1 day and a
TTL of 30 days, by all three engines on the same data in the same process. Results are
compared row by row (by event id) and summarised as a checksum.

    python benchmarks/bench_pit_join.py [--events 1000000] [--entities 100000] [--rows 5000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import duckdb
import numpy as np
import pandas as pd
from tether.plugins.features.pit import point_in_time_join

LAG, TTL = pd.Timedelta("1D"), pd.Timedelta("30D")
FEATURES = [f"f{i}" for i in range(5)]


def make_data(events: int, entities: int, rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    year_s = 365 * 86_400
    labelled = pd.DataFrame({
        "event_id": np.arange(events),
        "entity_id": rng.integers(0, entities, events),
        "event_ts": start + pd.to_timedelta(rng.integers(0, year_s, events), unit="s"),
        "label": rng.integers(0, 2, events),
    })
    feats = pd.DataFrame({
        "entity_id": rng.integers(0, entities, rows),
        "feature_ts": start + pd.to_timedelta(rng.integers(-year_s // 4, year_s, rows), unit="s"),
    })
    for name in FEATURES:
        values = rng.normal(size=rows)
        values[rng.random(rows) < 0.02] = np.nan  # some values are known to be missing
        feats[name] = values
    feats = feats.drop_duplicates(["entity_id", "feature_ts"], ignore_index=True)
    return labelled, feats


def run_tether(events, feats):
    return point_in_time_join(events, feats, entity="entity_id", prediction_time="event_ts",
                              feature_time="feature_ts", lag=LAG, ttl=TTL)


def run_pandas(events, feats):
    left = events.sort_values("event_ts", kind="stable")
    right = feats.assign(available_ts=feats["feature_ts"] + LAG).sort_values("available_ts", kind="stable")
    out = pd.merge_asof(left, right, left_on="event_ts", right_on="available_ts", by="entity_id",
                        direction="backward", allow_exact_matches=True)
    expired = (out["event_ts"] - out["feature_ts"]) > TTL
    out.loc[expired, FEATURES] = np.nan
    return out.drop(columns=["feature_ts", "available_ts"])  # in time order, like DuckDB's own order


def run_duckdb(events, feats):
    con = duckdb.connect()
    con.register("events", events)
    con.register("feats", feats)
    lag_us, ttl_us = LAG.value // 1000, TTL.value // 1000
    cols = ", ".join(
        f"CASE WHEN e.event_ts - f.feature_ts <= INTERVAL ({ttl_us}) MICROSECONDS THEN f.{c} END AS {c}"
        for c in FEATURES)
    out = con.sql(f"""
        SELECT e.*, {cols}
        FROM events e ASOF LEFT JOIN
             (SELECT *, feature_ts + INTERVAL ({lag_us}) MICROSECONDS AS available_ts FROM feats) f
          ON e.entity_id = f.entity_id AND e.event_ts >= f.available_ts""").df()
    con.close()
    return out


def checksum(frame: pd.DataFrame) -> str:
    ordered = frame.sort_values("event_id", kind="stable").reset_index(drop=True)
    values = ordered[FEATURES].to_numpy()
    digest = pd.util.hash_pandas_object(ordered[["event_id", *FEATURES]], index=False).sum()
    return f"{int(digest) & 0xFFFFFFFFFFFF:012x} (nulls={int(np.isnan(values).sum())}, sum={np.nansum(values):.6f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    events, feats = make_data(args.events, args.entities, args.rows)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"{len(events):,} labelled events, {events.entity_id.nunique():,} entities; "
          f"{len(feats):,} feature rows x {len(FEATURES)} features; lag {LAG}, ttl {TTL}; "
          f"duckdb {duckdb.__version__}, pandas {pd.__version__}")
    engines = (("tether point_in_time_join", run_tether), ("pandas merge_asof", run_pandas),
               ("bare DuckDB ASOF JOIN", run_duckdb))
    for _, fn in engines:
        fn(events.head(1000), feats.head(5000))  # warm-up (imports, first-call set-up)
    times: dict[str, list[float]] = {label: [] for label, _ in engines}
    cpu: dict[str, list[float]] = {label: [] for label, _ in engines}
    outputs: dict[str, pd.DataFrame] = {}
    for _ in range(args.repeat):  # interleaved, so background load hits every engine alike
        for label, fn in engines:
            t0, c0 = time.perf_counter(), time.process_time()
            outputs[label] = fn(events, feats)
            times[label].append(time.perf_counter() - t0)
            cpu[label].append(time.process_time() - c0)
    results = {}
    for label, _ in engines:
        results[label] = (statistics.median(times[label]), min(times[label]), checksum(outputs[label]))
        print(f"{label:<28} median {results[label][0]:6.3f} s  best {results[label][1]:6.3f} s  "
              f"cpu {statistics.median(cpu[label]):6.3f} s  checksum {results[label][2]}  "
              f"runs: {' '.join(f'{t:.2f}' for t in times[label])}")
    reference = outputs["tether point_in_time_join"].sort_values("event_id", kind="stable").reset_index(drop=True)
    for frame in outputs.values():
        other = frame.sort_values("event_id", kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(reference[["event_id", *FEATURES]], other[["event_id", *FEATURES]])
    best = {label: r[1] for label, r in results.items()}
    t_best, p_best, d_best = best.values()
    tether, pandas_, bare = (results[k][0] for k in results)
    same = len({r[2] for r in results.values()}) == 1
    print(f"merge_asof / tether: {pandas_ / tether:.2f}x median, {p_best / t_best:.2f}x best   "
          f"tether / bare DuckDB: {tether / bare:.2f}x median, {t_best / d_best:.2f}x best   "
          f"identical results: {'yes' if same else 'NO'}")
    print(f"load average {os.getloadavg()[0]:.2f} at end; tether keeps the entity table's row order, "
          "the baselines return rows in their own order (compared after sorting by event_id)")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
