"""Peak memory of the split stage and of ``tether leakage`` on a wide table.

    .venv/bin/python benchmarks/bench_split_memory.py [--rows 5000000]

Writes ``--rows`` rows x 20 columns (an int entity id, a UTC timestamp, a 0/1 label, a
split column, a 5-value text column and 15 float columns, one with 10 % missing values;
about 160 bytes a row in Arrow) to ``benchmarks/.data/wide_<rows>.parquet`` in
1,000,000-row row groups, then measures, each in a fresh process, peak RSS as
``/usr/bin/time -v`` reports it ("Maximum resident set size"; ``getrusage`` of the children
when ``/usr/bin/time`` is missing):

* the split stage: ``tether run chain.yaml --from split`` on a chain of a Parquet snapshot
  of the file and a ``time_group`` split (entity, time and label declared, the split
  column ignored), every leakage check on (the snapshot stage always re-reads its source,
  so its own streaming peak is part of the run's; the first, untimed run stores the snapshot);
* ``tether leakage FILE --split-column split --entity-column customer --time-column ts
  --label y`` (every check on).
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
TETHER = [sys.executable, "-m", "tether"]


def write_data(rows: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = DATA / f"wide_{rows}.parquet"
    if path.exists():
        return path
    DATA.mkdir(exist_ok=True)
    step = 1_000_000
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, _schema(pa)) as writer:
        for i, start in enumerate(range(0, rows, step)):
            n = min(step, rows - start)
            rng = np.random.default_rng(100 + i)
            cols = {"customer": rng.integers(0, max(rows // 10, 1), n),
                    "ts": (np.datetime64("2025-01-01T00:00:00", "us")
                           + rng.integers(0, 365 * 86_400_000_000, n).astype("timedelta64[us]")),
                    "y": (rng.random(n) < 0.3).astype("int64"),
                    "split": rng.choice(np.array(["train", "validation", "test"], dtype=object), n, p=[.7, .15, .15]),
                    "city": rng.choice(np.array(["Oslo", "New York", "San Jose", "Lima", "Pune"], dtype=object), n)}
            for j in range(15):
                cols[f"x{j:02d}"] = rng.normal(50, 10, n)
            cols["x14"][rng.random(n) < 0.1] = np.nan
            writer.write_table(pa.table(cols, schema=_schema(pa)), row_group_size=step)
    tmp.rename(path)
    return path


def _schema(pa):
    fields = [("customer", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("y", pa.int64()),
              ("split", pa.string()), ("city", pa.string())]
    return pa.schema(fields + [(f"x{j:02d}", pa.float64()) for j in range(15)])


def write_chain(folder: Path, data: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    chain = folder / "chain.yaml"
    chain.write_text(
        "version: 1\nname: wide\nworkspace: .tether\nstages:\n"
        f"  - {{stage: snapshot, plugin: parquet, params: {{path: '{data}', dataset: wide}}}}\n"
        "  - stage: split\n    plugin: time_group\n"
        "    params: {time_column: ts, entity_column: customer, label: y, ignore_columns: [split]}\n",
        encoding="utf-8")
    return chain


def measure(args: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """(peak RSS MiB, seconds, exit code, last stderr line) of a command run in a fresh process."""
    t0 = time.perf_counter()
    if shutil.which("time") or Path("/usr/bin/time").exists():
        proc = subprocess.run(["/usr/bin/time", "-v", *args], cwd=cwd, capture_output=True, text=True)
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak = int(found.group(1)) / 1024 if found else float("nan")
        err = [line for line in proc.stderr.splitlines() if line.startswith("tether:")]
    else:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
        peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
        err = proc.stderr.strip().splitlines()
    return peak, time.perf_counter() - t0, proc.returncode, (err[-1] if err else "") + proc.stdout[-600:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--only", choices=("split", "leakage"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = write_data(args.rows)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(data).metadata
    arrow_mib = pq.read_table(data).nbytes / 2**20
    print(f"data ready in {time.perf_counter() - t0:.0f} s: {data.name}, {meta.num_rows:,} rows x "
          f"{meta.num_columns} columns, {arrow_mib:.0f} MiB in Arrow", flush=True)
    if args.only in (None, "split"):
        folder = DATA / f"wide_{args.rows}_chain"
        chain = write_chain(folder, data)
        if not (folder / ".tether").exists():
            peak, secs, code, tail = measure([*TETHER, "run", str(chain)], folder)
            print(f"  (first run, stores the snapshot: peak {peak:.0f} MiB, {secs:.0f} s, exit {code})", flush=True)
        peak, secs, code, tail = measure([*TETHER, "run", str(chain), "--from", "split"], folder)
        print(f"split stage (tether run --from split): peak {peak:7.0f} MiB  {secs:6.1f} s  exit {code}", flush=True)
        if code not in (0, 1):
            print(tail)
    if args.only in (None, "leakage"):
        peak, secs, code, tail = measure([*TETHER, "leakage", str(data), "--split-column", "split", "--entity-column",
                                          "customer", "--time-column", "ts", "--label", "y"], DATA)
        print(f"tether leakage:                        peak {peak:7.0f} MiB  {secs:6.1f} s  exit {code}", flush=True)
        if code not in (0, 1):
            print(tail)


if __name__ == "__main__":
    main()
