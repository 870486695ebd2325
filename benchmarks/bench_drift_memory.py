"""Peak memory of a drift report on a 10,000,000-row current window read from Parquet in chunks.

    .venv/bin/python benchmarks/bench_drift_memory.py [--rows 10000000]

Writes a reference (200,000 rows) and a current window (``--rows``, 20 numeric + 5
categorical columns, 1,000,000-row row groups) to ``benchmarks/.data/``, then measures, each
in a fresh subprocess (peak RSS from ``/proc/self/status`` VmHWM):

* tether: reference profile + chunked profile of the current window + the default report,
  in chunks of 262,144 rows (the default), on a quarter of the window and on all of it, with
  the default ``sketch_size`` (exact up to 10,000,000 distinct values a column: memory grows
  with the window's distinct values, 16 bytes each) and with ``sketch_size: 200000``
  (compressed sketches: memory follows the chunk size, not the window size), and with
  1,000,000-row chunks on the whole window at ``sketch_size: 200000``;
* pandas: only reading the whole current window into a DataFrame, which is what any
  full-frame drift computation starts with.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"


def write_data(rows: int) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from bench_drift import make_frames

    DATA.mkdir(exist_ok=True)
    ref_path, cur_path = DATA / "mem_ref.parquet", DATA / f"mem_cur_{rows}.parquet"
    if not ref_path.exists():
        ref, _ = make_frames(200_000, seed=1)
        pq.write_table(pa.Table.from_pandas(ref, preserve_index=False), ref_path)
    if not cur_path.exists():
        step = 1_000_000
        writer = None
        for i, start in enumerate(range(0, rows, step)):
            _, cur = make_frames(min(step, rows - start), seed=100 + i)
            t = pa.Table.from_pandas(cur, preserve_index=False)
            writer = writer or pq.ParquetWriter(cur_path, t.schema)
            writer.write_table(t, row_group_size=step)
        writer.close()
        del np
    return ref_path, cur_path


def child_tether(ref_path: str, cur_path: str, batch_rows: int, limit_rows: int, sketch_size: int) -> dict:
    from itertools import islice

    from tether.context import RunContext
    from tether.manager import PluginHost
    from tether.plugins.monitoring.monitor import DriftMonitor
    from tether.plugins.monitoring.params import DriftParams
    from tether.plugins.monitoring.profiles import profile_batches
    from tether.plugins.monitoring.windows import file_batches

    t0 = time.perf_counter()
    host = PluginHost(entry_points=False)
    monitor = DriftMonitor(drift=DriftParams(sketch_size=sketch_size))
    ref = profile_batches(file_batches(ref_path, batch_rows), **monitor.builder_args())
    batches = islice(file_batches(cur_path, batch_rows), -(-limit_rows // batch_rows))
    report = monitor.check(reference=ref, current_batches=batches, context=RunContext(host=host, workspace=None),
                           reference_id="ref", current_id="cur", send=False, launch=False)
    return {"seconds": time.perf_counter() - t0, "rows": report.details["current_rows"],
            "drifted": report.details["drifted_columns"]}


def child_pandas(cur_path: str) -> dict:
    import pandas as pd

    t0 = time.perf_counter()
    frame = pd.read_parquet(cur_path)
    return {"seconds": time.perf_counter() - t0, "rows": len(frame)}


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM; ru_maxrss can carry the parent's peak over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "tether":
            out = child_tether(rest[0], rest[1], int(rest[2]), int(rest[3]), int(rest[4]))
        else:
            out = child_pandas(rest[0])
        out["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(out))
        return
    t0 = time.perf_counter()
    ref_path, cur_path = write_data(args.rows)
    print(f"data ready in {time.perf_counter() - t0:.0f} s: {cur_path.name} "
          f"({cur_path.stat().st_size / 2**20:.0f} MiB on disk)", flush=True)
    from tether.plugins.monitoring.sketches import DEFAULT_SKETCH_SIZE

    runs = [(sketch, 262_144, limit) for sketch in (DEFAULT_SKETCH_SIZE, 200_000)
            for limit in (args.rows // 4, args.rows)] + [(200_000, 1_000_000, args.rows)]
    for sketch, batch, limit in runs:
        r = run_child("tether", str(ref_path), str(cur_path), str(batch), str(limit), str(sketch))
        label = f"tether, {r['rows']:,} rows, chunks {batch:,}, sketch_size {sketch:,}"
        print(f"{label:<64} peak {r['peak_rss_mib']:7.0f} MiB  {r['seconds']:6.1f} s  load {os.getloadavg()[0]:.2f}  "
              f"drifted: {', '.join(r['drifted'])}", flush=True)
    r = run_child("pandas", str(cur_path))
    print(f"{'pandas read_parquet of the whole window, ' + format(r['rows'], ',') + ' rows':<64} "
          f"peak {r['peak_rss_mib']:7.0f} MiB  {r['seconds']:6.1f} s (reading only)")


if __name__ == "__main__":
    main()
