"""Snapshotting a 5,000,000 x 25 DataFrame end to end vs a bare ``pyarrow.parquet.write_table``.

    .venv/bin/python benchmarks/bench_snapshot_write.py [--rows 5000000] [--repeat 3]

Both sides start from the same pandas DataFrame and write zstd Parquet to the same disk
(``benchmarks/.data/``): the baseline converts it with ``pa.Table.from_pandas`` and calls
``pq.write_table``; tether's ``create_snapshot`` converts, fingerprints, computes the card's
column summaries, writes the Parquet part, commits it and writes the record. Runs alternate
with an untimed ``os.sync()`` before each, and the best and median of ``--repeat`` are
reported for each. Writes to a disk vary a lot
run to run on a small VM (page-cache writeback); ``--dir /dev/shm/tether-bench`` measures
the same work without the disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import conditions  # benchmarks/conditions.py: load average and peak memory
import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / ".data" / "bench_snapshot_write"


def build_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cols: dict[str, object] = {}
    for i in range(12):
        values = rng.normal(100, 25, rows).round(2)
        if i % 4 == 0:
            values[rng.random(rows) < 0.02] = np.nan
        cols[f"f{i}"] = values
    for i in range(8):
        cols[f"i{i}"] = rng.integers(0, 10 ** (i + 2), rows)
    for i, choices in enumerate([["north", "south", "east", "west"], ["card", "bank", "cash"],
                                 [f"plan-{k}" for k in range(40)]]):
        cols[f"s{i}"] = np.array(choices, dtype=object)[rng.integers(0, len(choices), rows)]
    cols["flag"] = rng.random(rows) < 0.3
    cols["ts"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86400 * 365, rows), unit="s")
    frame = pd.DataFrame(cols)
    for name in ("s0", "s1", "s2"):
        frame[name] = frame[name].astype("str")
    return frame


def bare(frame: pd.DataFrame, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, out, compression="zstd")


def tether(frame: pd.DataFrame, workspace: Path):
    from tether.plugins.snapshots.create import create_snapshot

    return create_snapshot(frame, name="bench", workspace=workspace, time_column="ts")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=DATA,
                        help="where both sides write (default benchmarks/.data; /dev/shm/... removes disk noise)")
    args = parser.parse_args()
    data = args.dir
    frame = build_frame(args.rows)
    print(f"frame: {len(frame):,} rows x {frame.shape[1]} columns, "
          f"{frame.memory_usage(deep=True).sum() / (1 << 30):.2f} GiB in pandas")
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    t_bare, t_tether = [], []
    snap = None
    for i in range(args.repeat):
        out = data / f"bare-{i}.parquet"
        os.sync()  # (untimed) neither side pays for the other's background writeback
        t0 = time.perf_counter()
        bare(frame, out)
        t_bare.append(time.perf_counter() - t0)
        size = out.stat().st_size
        out.unlink()
        ws = data / f"ws-{i}"
        os.sync()
        t0 = time.perf_counter()
        snap = tether(frame, ws)
        t_tether.append(time.perf_counter() - t0)
        shutil.rmtree(ws)
    print(f"  bare pa.Table.from_pandas + pq.write_table(zstd)  best {min(t_bare):6.2f} s   "
          f"(runs: {', '.join(f'{t:.2f}' for t in t_bare)}); {size / 1e6:.0f} MB written")
    print(f"  tether create_snapshot (hash + zstd + record)     best {min(t_tether):6.2f} s   "
          f"(runs: {', '.join(f'{t:.2f}' for t in t_tether)}); {snap.size_bytes / 1e6:.0f} MB written")

    def med(ts):
        return sorted(ts)[len(ts) // 2]

    print(f"tether / bare: best {min(t_tether) / min(t_bare):.2f}x, median {med(t_tether) / med(t_bare):.2f}x "
          f"(writing to {data})")
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
    print(f"machine: {conditions.describe()}")
