"""Point-in-time join benchmark: tether vs a plain DuckDB ASOF LEFT JOIN vs pandas ``merge_asof``.

Labelled events (event id, entity, prediction time, label) are joined against a feature
table (entity, feature timestamp, 5 float features, 2% missing) five times as long, at
several sizes, without lag/TTL and with a lag of 1 day and a TTL of 30 days. Each tool
runs as the simplest code a user would write for that result (see ``JOIN`` below), in a
fresh subprocess per run, on the same data (written once to Parquet); rounds are
interleaved so background load hits every tool alike. Each run reports:

* wall time of the join alone (data already loaded, one warm-up call on 1,000 rows first):
  the first full-size call in the process, and the best of two more calls in that process;
* peak resident memory *during the join*: the kernel's high-water mark (VmHWM, the figure
  ``ru_maxrss`` reports) is reset through ``/proc/self/clear_refs`` after loading, and read
  after the join; the resident size before the join (data loaded) is reported beside it;
* per-feature checksums (null count, sum and a hash of the values in event-id order),
  which must be identical across tools.

    python benchmarks/bench_pit_join.py [--sizes 100000,1000000,5000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = [f"f{i}" for i in range(5)]
LAG, TTL = "1D", "30D"


def make_data(events: int, rows: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    start, year_s = pd.Timestamp("2025-01-01", tz="UTC"), 365 * 86_400
    entities = max(events // 10, 1)

    def stamps(low, high, size):
        return (start + pd.to_timedelta(rng.integers(low, high, size), unit="s")).astype("datetime64[ns, UTC]")

    labelled = pd.DataFrame({"event_id": np.arange(events), "entity_id": rng.integers(0, entities, events),
                             "event_ts": stamps(0, year_s, events), "label": rng.integers(0, 2, events)})
    feats = pd.DataFrame({"entity_id": rng.integers(0, entities, rows),
                          "feature_ts": stamps(-year_s // 4, year_s, rows)})
    for name in FEATURES:
        values = rng.normal(size=rows)
        values[rng.random(rows) < 0.02] = np.nan
        feats[name] = values
    return labelled, feats.drop_duplicates(["entity_id", "feature_ts"], ignore_index=True)


# The joins, as a user would write them --------------------------------------------------

def join_tether(events, feats, timed: bool):
    from tether.plugins.features.pit import point_in_time_join

    return point_in_time_join(events, feats, entity="entity_id", prediction_time="event_ts",
                              feature_time="feature_ts", lag=LAG if timed else None, ttl=TTL if timed else None)


def join_duckdb(events, feats, timed: bool):
    import duckdb

    if not timed:
        return duckdb.sql("""SELECT e.*, f.f0, f.f1, f.f2, f.f3, f.f4 FROM events e ASOF LEFT JOIN feats f
                             ON e.entity_id = f.entity_id AND e.event_ts >= f.feature_ts""").df()
    fresh = ", ".join(f"CASE WHEN e.event_ts - f.feature_ts <= INTERVAL 30 DAY THEN f.{c} END AS {c}"
                      for c in FEATURES)
    return duckdb.sql(f"""SELECT e.*, {fresh} FROM events e ASOF LEFT JOIN feats f
                          ON e.entity_id = f.entity_id AND e.event_ts >= f.feature_ts + INTERVAL 1 DAY""").df()


def join_pandas(events, feats, timed: bool):
    import pandas as pd

    if not timed:
        return pd.merge_asof(events.sort_values("event_ts"), feats.sort_values("feature_ts"),
                             left_on="event_ts", right_on="feature_ts", by="entity_id")
    lag, ttl = pd.Timedelta(LAG), pd.Timedelta(TTL)
    feats = feats.assign(available_ts=feats["feature_ts"] + lag).sort_values("available_ts")
    return pd.merge_asof(events.sort_values("event_ts"), feats, left_on="event_ts", right_on="available_ts",
                         by="entity_id", tolerance=ttl - lag)


JOIN = {"tether": join_tether, "duckdb": join_duckdb, "pandas": join_pandas}


# One run, in its own process ------------------------------------------------------------

def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(tool: str, data: str, timed: bool) -> dict:
    import numpy as np
    import pandas as pd

    events, feats = pd.read_parquet(f"{data}/events.parquet"), pd.read_parquet(f"{data}/feats.parquet")
    JOIN[tool](events.head(1000), feats.head(5000), timed)  # warm-up: imports, first-call set-up
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current size
    t0 = time.perf_counter()
    out = JOIN[tool](events, feats, timed)
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM")
    again = []
    for _ in range(2):  # the same call again in the same process: allocator and caches warm
        t0 = time.perf_counter()
        JOIN[tool](events, feats, timed)
        again.append(time.perf_counter() - t0)
    out = out.sort_values("event_id", ignore_index=True)
    sums = {}
    for c in FEATURES:
        values = out[c].to_numpy(dtype="float64", na_value=np.nan)
        digest = int(pd.util.hash_array(np.where(np.isnan(values), 0.0, values)).sum()) & 0xFFFFFFFFFF
        sums[c] = f"{int(np.isnan(values).sum())}/{np.nansum(values):.6f}/{digest:010x}"
    return {"seconds": seconds, "warm": min(again), "peak": peak, "before": before, "checksums": sums, "rows": len(out)}


def run_child(tool: str, data: str, timed: bool) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", tool, data, "1" if timed else "0"],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(events: int, rounds: int, workdir: str) -> list[dict]:
    labelled, feats = make_data(events, 5 * events)
    data = f"{workdir}/{events}"
    os.makedirs(data, exist_ok=True)
    labelled.to_parquet(f"{data}/events.parquet")
    feats.to_parquet(f"{data}/feats.parquet")
    print(f"\n{events:,} events ({labelled.entity_id.nunique():,} entities) x {len(feats):,} feature rows")
    rows = []
    for timed in (False, True):
        runs = {tool: [] for tool in JOIN}
        loads = []
        for _ in range(rounds):
            for tool in JOIN:
                loads.append(os.getloadavg()[0])
                runs[tool].append(run_child(tool, data, timed))
        rows.append(report(events, timed, runs, loads))
    return rows


def report(events: int, timed: bool, runs: dict, loads: list[float]) -> dict:
    summary = {tool: {"median": statistics.median(r["seconds"] for r in got),
                      "best": min(r["seconds"] for r in got),
                      "warm": statistics.median(r["warm"] for r in got),
                      "peak": max(r["peak"] for r in got) / 2**20,
                      "before": statistics.median(r["before"] for r in got) / 2**20,
                      "checksums": got[-1]["checksums"]} for tool, got in runs.items()}
    same = len({json.dumps(s["checksums"], sort_keys=True) for s in summary.values()}) == 1
    label = f"lag {LAG}, ttl {TTL}" if timed else "no lag/TTL"
    print(f"  {label}: load average {min(loads):.2f}-{max(loads):.2f}; identical results: {'yes' if same else 'NO'}")
    for tool, s in summary.items():
        print(f"    {tool:<7} first call: median {s['median']:7.3f} s, best {s['best']:7.3f} s;  "
              f"repeated: {s['warm']:7.3f} s;  peak RSS {s['peak']:6.0f} MiB "
              f"(+{s['peak'] - s['before']:4.0f} MiB over the {s['before']:4.0f} MiB before the join)")
    t, d, p = (summary[k]["median"] for k in ("tether", "duckdb", "pandas"))
    tw, dw, pw = (summary[k]["warm"] for k in ("tether", "duckdb", "pandas"))
    tp, dp = (summary[k]["peak"] - summary[k]["before"] for k in ("tether", "duckdb"))
    print(f"    DuckDB time / tether time {d / t:.2f}x (repeated {dw / tw:.2f}x)   "
          f"merge_asof / tether {p / t:.2f}x (repeated {pw / tw:.2f}x)   "
          f"peak RSS tether/DuckDB {summary['tether']['peak'] / summary['duckdb']['peak']:.2f} "
          f"(growth {tp / dp:.2f})")
    for c in FEATURES:
        print(f"    {c}: nulls/sum/hash {summary['tether']['checksums'][c]}")
    return {"events": events, "timed": timed, "same": same, "summary": summary}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], sys.argv[4] == "1")))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000", help="event counts (feature rows: 5x)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import duckdb
    import pandas as pd

    print(f"{os.cpu_count()} cores; duckdb {duckdb.__version__}, pandas {pd.__version__}; "
          f"{args.rounds} interleaved rounds, one subprocess per run")
    with tempfile.TemporaryDirectory() as workdir:
        results = [row for size in args.sizes.split(",") for row in bench(int(size), args.rounds, workdir)]
    if not all(r["same"] for r in results):
        raise SystemExit("results differ between tools")


if __name__ == "__main__":
    main()
