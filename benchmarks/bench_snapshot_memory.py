"""Snapshot a Parquet folder three times larger than the memory the process may use.

    .venv/bin/python benchmarks/bench_snapshot_memory.py [--limit-gib 1.0] [--factor 3.2]

Generates (once) a hive-partitioned folder under ``benchmarks/.data/`` whose data takes
``factor x limit`` bytes in Arrow memory, then runs ``create_snapshot`` on it in a child
process whose address space is capped with ``resource.setrlimit(RLIMIT_AS, limit)``: every
byte the interpreter, the libraries and the data may map, not just what is resident.
(The child uses the system allocator, whose virtual reservations are small; mimalloc
reserves about 1 GiB of address space up front.) For contrast, a second child tries to
load the same folder whole with ``pyarrow.dataset(...).to_table()`` under the same cap.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / ".data" / "bench_snapshot_memory"
ROWS_PER_FILE = 2_000_000

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    limit = int(sys.argv[1]); mode = sys.argv[2]; folder = sys.argv[3]; ws = sys.argv[4]
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t0 = time.perf_counter()
    out = {"mode": mode}
    try:
        if mode == "snapshot":
            from tether.plugins.snapshots.create import create_snapshot
            snap = create_snapshot(folder, name="big-folder", workspace=ws)
            out.update(ok=True, rows=snap.num_rows, objects=len(snap.objects), stored_bytes=snap.size_bytes,
                       id=snap.id)
        else:
            import pyarrow.dataset as ds
            table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
            out.update(ok=True, rows=table.num_rows)
    except BaseException as exc:  # MemoryError / ArrowMemoryError under the cap
        out.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:160]}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))
""")


def generate(target_bytes: int) -> tuple[int, int]:
    """Write the folder if missing; return (rows, Arrow bytes)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = DATA / "MANIFEST.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info["arrow_bytes"] >= target_bytes:
            return info["rows"], info["arrow_bytes"]
    shutil.rmtree(DATA, ignore_errors=True)
    rows = total = 0
    i = 0
    rng = np.random.default_rng(0)
    while total < target_bytes:
        n = ROWS_PER_FILE
        table = pa.table({
            "id": np.arange(rows, rows + n, dtype=np.int64),
            "x": rng.normal(size=n).round(4), "y": rng.normal(size=n).round(4),
            "z": rng.random(n), "w": rng.integers(0, 1 << 31, n),
            "ts": (np.int64(1_700_000_000_000_000) + np.arange(rows, rows + n, dtype=np.int64))
            .astype("datetime64[us]"),
        })
        folder = DATA / "folder" / f"month={i // 4:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"part-{i:03d}.parquet", compression="zstd")
        rows += n
        total += table.nbytes
        i += 1
    marker.write_text(json.dumps({"rows": rows, "arrow_bytes": total, "files": i}))
    return rows, total


def child(limit: int, mode: str, workspace: Path) -> dict:
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": "2",
           "MALLOC_MMAP_THRESHOLD_": "131072", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(limit), mode, str(DATA / "folder"), str(workspace)],
                          capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"mode": mode, "ok": False, "error": (proc.stderr.strip().splitlines() or ["killed"])[-1],
                "exit": proc.returncode}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-gib", type=float, default=1.0)
    parser.add_argument("--factor", type=float, default=3.2)
    args = parser.parse_args()
    limit = int(args.limit_gib * (1 << 30))
    t0 = time.perf_counter()
    rows, arrow_bytes = generate(int(limit * args.factor))
    disk = sum(p.stat().st_size for p in (DATA / "folder").rglob("*.parquet"))
    print(f"folder: {rows:,} rows, {arrow_bytes / (1 << 30):.2f} GiB in Arrow memory "
          f"({arrow_bytes / limit:.1f}x the cap), {disk / (1 << 30):.2f} GiB on disk "
          f"(ready in {time.perf_counter() - t0:.0f} s)")
    print(f"cap: RLIMIT_AS = {limit / (1 << 30):.2f} GiB of address space for the whole child process")
    workspace = DATA / "ws"
    shutil.rmtree(workspace, ignore_errors=True)
    snap = child(limit, "snapshot", workspace)
    print(f"  tether create_snapshot: {'ok' if snap['ok'] else 'FAILED'} in {snap.get('seconds')} s, "
          f"peak RSS {snap.get('peak_rss_mib')} MiB"
          + (f", {snap['rows']:,} rows in {snap['objects']} objects" if snap["ok"] else f": {snap.get('error')}"))
    whole = child(limit, "load-whole", workspace)
    print(f"  pyarrow dataset.to_table() (load whole): {'ok' if whole['ok'] else 'fails'} "
          f"after {whole.get('seconds')} s" + ("" if whole["ok"] else f": {whole.get('error')}"))
    if snap["ok"]:
        print(f"peak RSS / Arrow data size: {snap['peak_rss_mib'] * (1 << 20) / arrow_bytes:.2f}")
    shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
