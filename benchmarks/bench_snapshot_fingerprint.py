"""Fingerprint throughput on a 1 GiB in-memory Arrow table: tether vs hashlib.md5 vs a plain read.

    .venv/bin/python benchmarks/bench_snapshot_fingerprint.py [--gib 1.0] [--repeat 3]

md5 is what DVC hashes files with; it gets the very same bytes (every Arrow buffer of the
table). The "plain read" touches every byte once (a numpy sum over each buffer), the floor
any hash has to pay. All three run warm (the table is in memory, each measured after one
untimed pass), best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time

import conditions  # benchmarks/conditions.py: load average and peak memory
import numpy as np
import pyarrow as pa


def build_table(gib: float) -> pa.Table:
    rng = np.random.default_rng(0)
    # 1 string column (~16 bytes per value) and 7 fixed-width ones, some with nulls
    bytes_per_row = 7 * 8 + 16 + 4
    n = int(gib * (1 << 30) / bytes_per_row)
    words = np.array([f"customer-{i:07d}" for i in range(4096)], dtype=object)
    columns = {
        "id": pa.array(np.arange(n, dtype=np.int64)),
        "a": pa.array(rng.normal(size=n)),
        "b": pa.array(rng.normal(size=n), mask=rng.random(n) < 0.05),
        "c": pa.array(rng.integers(0, 1 << 40, n)),
        "d": pa.array(rng.random(n)),
        "e": pa.array(rng.integers(-(1 << 30), 1 << 30, n)),
        "ts": pa.array((np.int64(1_700_000_000_000_000) + np.arange(n, dtype=np.int64) * 1_000_000)
                       .astype("datetime64[us]")),
        "name": pa.array(words[rng.integers(0, len(words), n)].tolist(), pa.string()),
    }
    return pa.table(columns)


def buffers(table: pa.Table):
    for column in table.columns:
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is not None:
                    yield buf


def md5_all(table: pa.Table) -> str:
    h = hashlib.md5()
    for buf in buffers(table):
        h.update(buf)
    return h.hexdigest()


def plain_read(table: pa.Table) -> int:
    total = 0
    for buf in buffers(table):
        n8 = buf.size // 8 * 8
        total += int(np.frombuffer(buf, dtype=np.uint64, count=n8 // 8).sum())
        total += int(np.frombuffer(buf, dtype=np.uint8, offset=n8).sum())
    return total


def best(func, repeat: int) -> float:
    func()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    from tether.plugins.snapshots.fingerprint import fingerprint_table

    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = build_table(args.gib)
    size = sum(buf.size for buf in buffers(table))
    print(f"table: {table.num_rows:,} rows x {table.num_columns} columns, {size / (1 << 30):.2f} GiB of Arrow buffers; "
          f"{os.cpu_count()} cores")
    rows = [
        ("plain read (numpy sum)", best(lambda: plain_read(table), args.repeat)),
        ("tether fingerprint (2 threads)", best(lambda: fingerprint_table(table, threads=2), args.repeat)),
        ("tether fingerprint (1 thread)", best(lambda: fingerprint_table(table, threads=1), args.repeat)),
        ("hashlib.md5 (DVC's hash)", best(lambda: md5_all(table), args.repeat)),
    ]
    tether = rows[1][1]
    for name, seconds in rows:
        print(f"  {name:<32} {seconds:7.3f} s  {size / seconds / 1e9:6.2f} GB/s  "
              f"{seconds / tether:5.2f}x tether's time")
    print(f"tether vs md5: {rows[3][1] / tether:.1f}x faster; tether vs plain read: {tether / rows[0][1]:.2f}x "
          "the time of reading the bytes once")


if __name__ == "__main__":
    main()
    print(f"machine: {conditions.describe()}")
