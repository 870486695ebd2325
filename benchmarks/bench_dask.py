"""Drift report, snapshot fingerprint and exact-duplicate check on the Dask engine, on
partitioned Parquet larger than a worker's memory limit, with 1 and 2 workers.

    .venv/bin/python benchmarks/bench_dask.py [--rows 50000000] [--partition-rows 1000000]
        [--memory-limit 2GiB] [--rounds 1] [--skip-local] [--no-snapshot]

Writes ``--rows`` rows x 20 columns (15 float, 1 int, 3 text, ``split``) as one Parquet
file per ``--partition-rows`` rows to ``benchmarks/.data/dask_<rows>/`` (kept for the next
run). Every partition repeats the first 200 rows of the first one under new splits, so the
duplicate check has leakage to find. Then, per configuration (the ``local`` engine in
this process, and Dask ``LocalCluster`` s of 1 and 2 worker processes with 1 thread and
``--memory-limit`` each), interleaved over ``--rounds``:

* ``drift``: the engine's profile of the data, compared with a reference profile of the
  first partition (the default drift tests);
* ``fingerprint``: the data fingerprint (the snapshot id), partitions streamed in order
  from the workers and hashed in this process;
* ``exact_duplicates``: row hashes per partition, a shuffle on the hash, groups spanning
  splits;
* ``snapshot``: a whole snapshot into a fresh workspace (local files + SQLite): on Dask
  the workers encode the Parquet objects (one per partition) while this process hashes;
  locally this process does both.

It prints seconds, this process's peak RSS, the largest worker peak RSS (VmHWM, reset
before each operation) and the load average, checks every configuration found the same
fingerprint, duplicate groups and row count, and prints the 1-to-2-worker speed-up. One
JSON line per measurement goes to stdout after the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conditions import describe, peak_rss_mib, reset_peak  # noqa: E402

DATA = HERE / ".data"
FLOATS, TEXTS = 15, 3
DUPLICATES = 200


def partition(rows: int, seed: int):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    columns = {f"x{i:02d}": np.round(rng.normal(i % 5, 1 + i % 3, rows), 2) for i in range(FLOATS)}
    columns["count"] = rng.integers(0, 1_000, rows)
    for i in range(TEXTS):
        columns[f"cat{i}"] = pa.array(rng.choice([f"c{k}" for k in range(5 + 10 * i)], rows)).dictionary_encode()
    columns["split"] = rng.choice(np.array(["train", "validation", "test"]), rows, p=[0.7, 0.15, 0.15])
    return pa.table(columns)


def write_data(rows: int, partition_rows: int) -> Path:
    import pyarrow.parquet as pq

    folder = DATA / f"dask_{rows}_{partition_rows}"
    done = folder / "_complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    first = None
    for i, start in enumerate(range(0, rows, partition_rows)):
        table = partition(min(partition_rows, rows - start), seed=i)
        if first is None:
            first = table.slice(0, DUPLICATES).drop_columns(["split"])
        elif table.num_rows > DUPLICATES:
            table = _with_copies(first, table)
        pq.write_table(table, folder / f"part-{i:05d}.parquet", row_group_size=256 * 1024)
    done.touch()
    return folder


def _with_copies(first, table):
    """``table`` whose first rows are copies of the first partition's, under this table's splits."""
    import pyarrow as pa

    head = first.append_column("split", table.column("split").slice(0, DUPLICATES))
    rest = table.slice(DUPLICATES)
    return pa.concat_tables([head.cast(rest.schema), rest])


def worker_peaks(client) -> float:
    return max(client.run(peak_rss_mib).values()) if client is not None else 0.0


def measure(name: str, engine, folder: Path, reference, host, snapshots: bool) -> list[dict]:
    from tether.plugins.monitoring.compare import compare
    from tether.plugins.snapshots.fingerprint import Fingerprinter

    client = engine.client() if engine.name == "dask" else None
    out = []

    def timed(operation, fn):
        reset_peak()
        if client is not None:
            client.run(reset_peak)
        t0 = time.perf_counter()
        result = fn()
        out.append({"config": name, "operation": operation, "seconds": round(time.perf_counter() - t0, 2),
                    "client_peak_mib": round(peak_rss_mib()), "worker_peak_mib": round(worker_peaks(client)),
                    "result": result, "conditions": describe()})

    def drift():
        profile = engine.profile(folder)
        results, _ = compare(reference, profile, backends=host.backends)
        return {"rows": profile.rows, "drifted": sorted({r.column for r in results if r.drifted})}

    def fingerprint():
        fp = None
        for batch in engine.record_batches(folder, batch_rows=256 * 1024):
            fp = fp or Fingerprinter(batch.schema)
            fp.update(batch)
        return {"rows": fp.num_rows, "fingerprint": fp.hexdigest()}

    def duplicates():
        found = engine.exact_duplicates(folder, split_column="split")
        return {"rows": len(found.rows), "groups": found.groups}

    def snapshot():
        import shutil
        import tempfile

        from tether.plugins.engines.partitions import PartitionedBatches
        from tether.plugins.snapshots.create import take_snapshot
        from tether.workspace import Workspace

        root = Path(tempfile.mkdtemp(prefix="bench-dask-", dir=DATA))
        try:
            with Workspace.open(host, root / ".tether") as workspace:
                data = PartitionedBatches(path=folder, engine=engine, batch_rows=256 * 1024)
                snap = take_snapshot(data, name="bench", source=str(folder), workspace=workspace)
            return {"rows": snap.num_rows, "id": snap.id}
        finally:
            shutil.rmtree(root, ignore_errors=True)

    timed("drift", drift)
    timed("fingerprint", fingerprint)
    timed("exact_duplicates", duplicates)
    if snapshots:
        timed("snapshot", snapshot)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--partition-rows", type=int, default=1_000_000)
    ap.add_argument("--memory-limit", default="2GiB")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-local", action="store_true", help="only the Dask configurations")
    ap.add_argument("--no-snapshot", action="store_true", help="skip the full snapshot (objects written to storage)")
    args = ap.parse_args()

    from tether.manager import PluginHost
    from tether.plugins.engines.partitions import plan, read_batches
    from tether.plugins.monitoring.profiles import profile_batches

    t0 = time.perf_counter()
    folder = write_data(args.rows, args.partition_rows)
    size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    layout = plan(folder)
    first = layout.partitions[0]
    in_memory = sum(b.nbytes for b in read_batches(first, layout.schema)) * len(layout.partitions)
    print(f"data: {args.rows:,} rows x {len(layout.schema)} columns in {len(layout.partitions)} files, "
          f"{size / 2**30:.2f} GiB on disk, ~{in_memory / 2**30:.1f} GiB in Arrow memory "
          f"(ready in {time.perf_counter() - t0:.0f} s); worker memory limit {args.memory_limit}")
    host = PluginHost(entry_points=False)
    reference = profile_batches(read_batches(first, layout.schema), sample_rows=0)
    configs = ([] if args.skip_local else [("local", "local", {})]) + [
        (f"dask x{n}", "dask", {"workers": n, "memory_limit": args.memory_limit, "in_flight": 2}) for n in (1, 2)]
    rows: list[dict] = []
    for _ in range(args.rounds):
        for name, plugin, params in configs:
            engine = host.backends.create("engine", plugin, params)
            try:
                rows.extend(measure(name, engine, folder, reference, host, not args.no_snapshot))
            finally:
                engine.close()
    report(rows)


def report(rows: list[dict]) -> None:
    print(f"{'config':<10} {'operation':<17} {'seconds':>8} {'client MiB':>10} {'worker MiB':>10}  conditions")
    for r in rows:
        print(f"{r['config']:<10} {r['operation']:<17} {r['seconds']:>8.1f} {r['client_peak_mib']:>10,} "
              f"{r['worker_peak_mib']:>10,}  {r['conditions']}")
    for operation in dict.fromkeys(r["operation"] for r in rows):
        results = {json.dumps(r["result"], sort_keys=True) for r in rows if r["operation"] == operation}
        assert len(results) == 1, f"{operation}: configurations disagree: {results}"
        one = [r["seconds"] for r in rows if r["operation"] == operation and r["config"] == "dask x1"]
        two = [r["seconds"] for r in rows if r["operation"] == operation and r["config"] == "dask x2"]
        print(f"{operation}: same result everywhere {next(iter(results))}; "
              f"1 -> 2 workers speed-up x{min(one) / min(two):.2f}")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
