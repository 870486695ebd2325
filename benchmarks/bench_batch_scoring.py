"""Batch scoring of a large Parquet file: tether's streaming ``batch`` strategy vs plain pandas.

    .venv/bin/python benchmarks/bench_batch_scoring.py [--rows 5000000] [--rounds 2] [--batch-rows 65536]

Trains the churn example's model once (a small chain in ``benchmarks/.data/``), writes a
``rows``-row Parquet file of customers to score, then scores it in child processes,
alternating the two ways round by round:

* ``tether``: the ``batch`` rollout strategy with ``source:`` the file, which streams
  ``batch_rows`` rows at a time through the model version's verified bundle into a
  Parquet prediction file (``ParquetWriter``);
* ``pandas``: what a user writes by hand: ``pd.read_parquet(file)``, the fitted transform
  and ``model.predict_proba`` / ``predict`` on the whole frame, ``to_parquet``.

Each child reports its wall time and its peak resident memory (``VmHWM``: the
high-water mark of the whole process, interpreter and libraries included; ``ru_maxrss``
would carry over the parent's peak across ``exec``). The goal is
a tether peak under 1 GiB for 5,000,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data" / "bench_batch_scoring"
EXAMPLE = HERE.parent / "examples" / "churn"
sys.path.insert(0, str(HERE))

CHAIN = """\
version: 1
name: bench-batch-scoring
workspace: .tether
stages:
  - stage: snapshot
    plugin: python
    params: {function: "churn.data:customers", dataset: customers, time_column: event_ts, key: [customer_id],
             kwargs: {rows: 20000}}
  - stage: split
    plugin: time
    params: {time_column: event_ts}
  - stage: featurize
    params: {label: churned, numeric: [tenure_months, monthly_charges, total_charges, support_tickets,
             days_since_login], categorical: [region, contract, payment_method]}
  - {step: "churn.train:fit"}
  - stage: evaluate
    plugin: classification
  - stage: register
    params: {model_name: churn}
"""

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    mode, folder, source, batch_rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t0 = time.perf_counter()
    from tether.context import RunContext
    from tether.manager import PluginHost
    from tether.workspace import Workspace
    host = PluginHost(entry_points=False)
    ws = Workspace.open(host, folder + "/.tether")
    mv = ws.resolve("churn", kind="model_version")
    out = {"mode": mode}
    if mode == "tether":
        from tether.plugins.rollout.state import record_start
        backend = host.backends.create("rollout", "batch", {"source": source, "batch_rows": batch_rows,
                                                             "output": folder + "/predictions", "progress": False})
        dep = backend.deploy(mv, None, context=RunContext(host=host, workspace=ws))
        record_start(ws.store, dep, parents=[(mv.id, "model_version")])
        out["rows"] = dep.details["rows"]
    else:
        import pandas as pd
        model = ws.load_model(ws.store.get(mv.model_id, kind="model"))
        features = ws.store.get(mv.feature_set_id, kind="features")
        transform = ws.load_transform(features)
        frame = pd.read_parquet(source)
        X = pd.DataFrame(transform.transform(frame[list(features.input_columns)]),
                         columns=list(features.feature_names))
        result = pd.DataFrame({"customer_id": frame["customer_id"], "score": model.predict_proba(X)[:, 1],
                               "prediction": model.predict(X), "model_version": mv.id})
        result.to_parquet(folder + "/pandas-predictions.parquet")
        out["rows"] = len(result)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    # VmHWM: this process's resident high-water mark (ru_maxrss would carry the parent's over exec)
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    out["peak_rss_mib"] = round(int(hwm[0].split()[1]) / 1024, 1) if hwm else \
        round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))
""")


def prepare(rows: int) -> Path:
    """Train once and write the file to score (kept between runs for the same size)."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    DATA.mkdir(parents=True, exist_ok=True)
    if not (DATA / "churn").exists():
        shutil.copytree(EXAMPLE / "churn", DATA / "churn")
    sys.path.insert(0, str(DATA))
    if not (DATA / ".tether").exists():
        from tether.config import load_chain
        from tether.manager import PluginHost
        from tether.runner import run_chain

        (DATA / "chain.yaml").write_text(CHAIN)
        host = PluginHost(entry_points=False)
        run, _ = run_chain(load_chain(DATA / "chain.yaml", host), host)
        assert run.status == "succeeded", run.error
    target = DATA / f"to-score-{rows}.parquet"
    if not target.exists():
        from churn.data import scoring_batch

        chunk, writer, done = 500_000, None, 0
        while done < rows:
            n = min(chunk, rows - done)
            table = pa.Table.from_pandas(scoring_batch(rows=n, seed=done), preserve_index=False)
            writer = writer or pq.ParquetWriter(str(target) + ".tmp", table.schema, compression="zstd")
            writer.write_table(table)
            done += n
        writer.close()
        os.replace(str(target) + ".tmp", target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--modes", default="tether,pandas", help="which to run (comma separated)")
    args = parser.parse_args()
    modes = tuple(m for m in ("tether", "pandas") if m in args.modes.split(","))
    from conditions import describe

    source = prepare(args.rows)
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    for round_ in range(args.rounds):
        order = modes if round_ % 2 == 0 else modes[::-1]
        for mode in order:
            proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(DATA), str(source), str(args.batch_rows)],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(DATA)})
            if proc.returncode != 0:
                sys.exit(f"{mode} child failed:\n{proc.stderr[-3000:]}")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            results[mode].append(out)
            print(f"round {round_ + 1} {mode:7s} {out['rows']:>10,} rows  {out['seconds']:7.1f} s  "
                  f"{out['rows'] / out['seconds']:>12,.0f} rows/s  peak RSS {out['peak_rss_mib']:,.0f} MiB", flush=True)
    best = {mode: min(r["seconds"] for r in runs) for mode, runs in results.items()}
    peak = {mode: max(r["peak_rss_mib"] for r in runs) for mode, runs in results.items()}
    print(f"\nrows {args.rows:,}, batch_rows {args.batch_rows:,}, {args.rounds} interleaved rounds (best time, "
          "highest peak)")
    for mode in modes:
        print(f"  {mode:7s} {best[mode]:7.1f} s  peak RSS {peak[mode]:,.0f} MiB")
    if len(modes) == 2:
        print(f"  time tether/pandas {best['tether'] / best['pandas']:.2f}x, "
              f"peak memory tether/pandas {peak['tether'] / peak['pandas']:.2f}x")
    if "tether" in modes:
        verdict = "under" if peak["tether"] < 1024 else "OVER"
        print(f"  tether peak {peak['tether']:,.0f} MiB: {verdict} the 1 GiB goal")
    print(f"  {describe()} (this parent process)  at {time.strftime('%Y-%m-%d %H:%M:%S')}")


if __name__ == "__main__":
    main()
