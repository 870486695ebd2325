"""Drift report speed, peak memory and KS agreement: tether vs a plain scipy pass vs Evidently.

    .venv/bin/python benchmarks/bench_drift.py [--sizes 200000,1000000,5000000] [--rounds 3]
                                               [--evidently-max 1000000] [--no-evidently] [--ks-sizes 10000000]

Data: 20 numeric and 5 categorical columns, reference and current of the same size;
n00-n04 and c0 drift, the rest do not. Every contender reads the same Parquet files in a
fresh subprocess (loading is not timed; peak RSS covers loading and computing), and the
contenders run in interleaved rounds (tether, scipy, ..., then again), best time kept;
the 1-minute load average is sampled before every run:

* ``tether``: the full default drift report (profiles of both sides, default tests,
  health checks, alert rules, plot data) from Arrow tables;
* ``tether_ks``: tether with KS on every numeric column and chi-squared on categorical ones;
* ``scipy_ks``: ``scipy.stats.ks_2samp(a, b)`` per numeric column and
  ``chi2_contingency`` per categorical one, from pandas frames, as a user would call them;
* ``evidently``: Evidently 0.7.x ``Report([DataDriftPreset()]).run`` + ``.dict()`` in its own
  venv (``benchmarks/.venv-evidently``, created if missing: Evidently pins pandas<3), up to
  ``--evidently-max`` rows a side.

The KS p-values of ``tether_ks`` and ``scipy_ks`` are compared column by column (largest
absolute difference). Then, per ``--ks-sizes``, a KS-only check on 4 generated numeric
columns (tether profiles + KS vs ``ks_2samp``, with times and peak memory). Results go to
``benchmarks/.data/bench_drift.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
EVIDENTLY_VENV = HERE / ".venv-evidently"
DRIFTED = {"n00", "n01", "n02", "n03", "n04", "c0"}


def make_frames(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def side(current: bool) -> pd.DataFrame:
        cols = {}
        for i in range(20):
            name = f"n{i:02d}"
            if i % 5 == 4:  # integer counts with many ties
                lam = 3.0 + (1.5 if current and name in DRIFTED else 0.0)
                cols[name] = rng.poisson(lam, n).astype("float64")
            else:
                shift = {"n00": 0.5, "n01": 0.3, "n02": 0.0, "n03": 0.25}.get(name, 0.0) if current else 0.0
                scale = 1.6 if current and name == "n02" else 1.0
                cols[name] = rng.normal(10 + shift * 2, 2 * scale, n)
        levels = [4, 8, 12, 20, 30]
        for j, k in enumerate(levels):
            p = np.linspace(1, 2, k)
            if current and j == 0:
                p = p[::-1] ** 2
            cols[f"c{j}"] = rng.choice([f"v{t}" for t in range(k)], n, p=p / p.sum())
        return pd.DataFrame(cols)

    return side(False), side(True)


TOOLS = ("tether", "tether_ks", "scipy_ks")
KS_TESTS = {"*": ["ks"], **{f"c{j}": ["chi2"] for j in range(5)}}


def scipy_ks(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, float]:
    """What a user would write: ks_2samp per numeric column, chi2_contingency per categorical one."""
    from scipy import stats

    out = {}
    for col in ref.columns:
        if col.startswith("n"):
            out[col] = float(stats.ks_2samp(ref[col].to_numpy(), cur[col].to_numpy()).pvalue)
        else:
            table = pd.concat([ref[col].value_counts(), cur[col].value_counts()], axis=1).fillna(0).T.to_numpy()
            out[col] = float(stats.chi2_contingency(table).pvalue)
    return out


def tether_report(ref_t: pa.Table, cur_t: pa.Table, host, tests=None):
    from tether.context import RunContext
    from tether.plugins.monitoring.monitor import DriftMonitor
    from tether.plugins.monitoring.params import DriftParams
    from tether.plugins.monitoring.profiles import profile_batches

    monitor = DriftMonitor(drift=DriftParams(tests=tests or {}))
    ref = profile_batches(ref_t.to_batches(max_chunksize=262_144), **monitor.builder_args())
    return monitor.check(reference=ref, current_batches=cur_t.to_batches(max_chunksize=262_144),
                         context=RunContext(host=host, workspace=None),
                         reference_id="reference", current_id="current", send=False, launch=False)


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(tool: str, ref_path: str, cur_path: str) -> dict:
    """One timed run of ``tool`` in this (fresh) process; loading is not timed."""
    if tool.startswith("tether"):
        from tether.manager import PluginHost

        host = PluginHost(entry_points=False)
        ref_t, cur_t = pq.read_table(ref_path), pq.read_table(cur_path)
        tests = KS_TESTS if tool == "tether_ks" else None
        tether_report(ref_t.slice(0, 2_000), cur_t.slice(0, 2_000), host, tests=tests)  # warm: lazy imports
        t0 = time.perf_counter()
        report = tether_report(ref_t, cur_t, host, tests=tests)
        seconds = time.perf_counter() - t0
        out = {"flags": sorted(report.details["drifted_columns"]),
               "p_values": {r.column: r.p_value for r in report.results if r.test in ("ks", "chi2")},
               "methods": sorted({r.method for r in report.results})}
    else:
        ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
        scipy_ks(ref.head(2_000), cur.head(2_000))  # warm: lazy imports
        t0 = time.perf_counter()
        p_values = scipy_ks(ref, cur)
        seconds = time.perf_counter() - t0
        out = {"p_values": p_values}
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib(), **out}


def ks_child(n: int) -> dict:
    """KS agreement at ``n`` rows a side on 4 numeric columns (generated here): tether's KS
    from default profiles built in 262,144-row chunks vs ``ks_2samp`` on the arrays."""
    from scipy import stats
    from tether.manager import PluginHost
    from tether.plugins.monitoring.profiles import profile_batches

    rng = np.random.default_rng(n)
    ref = {"normal": rng.normal(10, 2, n), "normal_shift": rng.normal(10, 2, n), "expo": rng.exponential(3, n),
           "poisson": rng.poisson(4, n).astype("float64")}
    cur = {"normal": rng.normal(10, 2, n), "normal_shift": rng.normal(10.002, 2, n), "expo": rng.exponential(3, n),
           "poisson": rng.poisson(4, n).astype("float64")}
    ks = PluginHost(entry_points=False).backends.create("drift", "ks", {})
    t0 = time.perf_counter()
    r = profile_batches(pa.table(ref).to_batches(max_chunksize=262_144), workers=2, sample_rows=0)
    c = profile_batches(pa.table(cur).to_batches(max_chunksize=262_144), workers=2, sample_rows=0)
    mine = {col: ks.run(col, r.columns[col], c.columns[col]) for col in ref}
    t_tether = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = {col: float(stats.ks_2samp(ref[col], cur[col]).pvalue) for col in ref}
    t_scipy = time.perf_counter() - t0
    return {"peak_rss_mib": peak_rss_mib(), "rows": n, "tether_seconds": t_tether, "scipy_seconds": t_scipy,
            "p_values": {col: (mine[col].p_value, theirs[col]) for col in ref},
            "max_abs_p_diff": max(abs(mine[col].p_value - theirs[col]) for col in ref),
            "methods": sorted({m.method for m in mine.values()})}


def run(cmd: list[str]) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed:\n{proc.stderr[-2000:]}")
    lines = [json.loads(x) for x in proc.stdout.strip().splitlines() if x.startswith("{")]
    return {**{k: v for d in lines for k, v in d.items()}, "load": load}


EVIDENTLY_WRAPPER = (
    "import runpy, sys, json; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
    "import evidently; hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]; "
    "print(json.dumps({'peak_rss_mib': int(hwm.split()[1]) / 1024, 'version': evidently.__version__}))")


def ensure_evidently() -> Path | None:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print("creating benchmarks/.venv-evidently (evidently==0.7.*, pandas<3) ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
            subprocess.run([str(EVIDENTLY_VENV / "bin" / "pip"), "install", "-q", "evidently==0.7.*", "pandas<3",
                            "pyarrow"], check=True)
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"cannot install Evidently here ({exc}); running without it", flush=True)
            return None
    return python


def write_data(n: int) -> tuple[Path, Path]:
    ref_path, cur_path = DATA / f"drift_ref_{n}.parquet", DATA / f"drift_cur_{n}.parquet"
    if not (ref_path.exists() and cur_path.exists()):
        ref, cur = make_frames(n)
        pq.write_table(pa.Table.from_pandas(ref, preserve_index=False), ref_path)
        pq.write_table(pa.Table.from_pandas(cur, preserve_index=False), cur_path)
    return ref_path, cur_path


def summarise(n: int, runs: dict[str, list[dict]]) -> dict:
    best = {tool: min(r["seconds"] for r in rs) for tool, rs in runs.items()}
    row: dict = {"rows": n, "seconds": best,
                 "peak_rss_mib": {tool: max(r["peak_rss_mib"] for r in rs) for tool, rs in runs.items()},
                 "load": {tool: [round(r["load"], 2) for r in rs] for tool, rs in runs.items()}}
    mine, theirs = runs["tether_ks"][0]["p_values"], runs["scipy_ks"][0]["p_values"]
    ks = [c for c in theirs if c.startswith("n")]
    row["max_abs_ks_p_diff"] = max(abs(mine[c] - theirs[c]) for c in ks)
    row["ks_p_values"] = {c: (mine[c], theirs[c]) for c in ks}
    row["tether_flags"] = runs["tether"][0]["flags"]
    row["flags_exactly_drifted"] = set(row["tether_flags"]) == DRIFTED
    row["tether_methods"] = runs["tether_ks"][0]["methods"]
    row["ratios"] = {"scipy_ks / tether": best["scipy_ks"] / best["tether"],
                     "scipy_ks / tether_ks": best["scipy_ks"] / best["tether_ks"]}
    if "evidently" in runs:
        row["ratios"]["evidently / tether"] = best["evidently"] / best["tether"]
        ev = runs["evidently"][0]
        row["evidently_version"] = ev.get("version")
        row["evidently_flags"] = sorted(c for c, e in ev["columns"].items() if e["drifted"])
    return row


def report(row: dict) -> None:
    n, s, mem, load = row["rows"], row["seconds"], row["peak_rss_mib"], row["load"]
    print(f"\n== {n:,} reference x {n:,} current rows, 20 numeric + 5 categorical columns ==")
    for tool in s:
        print(f"{tool:<12} best {s[tool]:8.3f} s   peak {mem[tool]:7.0f} MiB   load avg {load[tool]}")
    print("ratios: " + ", ".join(f"{k} = {v:.1f}x" for k, v in row["ratios"].items()))
    print(f"largest |KS p-value tether - ks_2samp| over 20 numeric columns: {row['max_abs_ks_p_diff']:.1e}")
    print(f"tether flags: {', '.join(row['tether_flags'])} (exactly the drifted columns: "
          f"{row['flags_exactly_drifted']})")
    if "evidently_flags" in row:
        print(f"Evidently {row['evidently_version']} flags: {', '.join(row['evidently_flags'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200000,1000000,5000000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--evidently-max", type=int, default=1_000_000)
    ap.add_argument("--no-evidently", action="store_true")
    ap.add_argument("--ks-sizes", default="10000000", help="KS-only agreement check on 4 columns (empty: skip)")
    ap.add_argument("--child", nargs=3)
    ap.add_argument("--ks-child", type=int)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if args.ks_child:
        print(json.dumps(ks_child(args.ks_child)))
        return
    DATA.mkdir(exist_ok=True)
    python = None if args.no_evidently else ensure_evidently()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        ref_path, cur_path = write_data(n)
        runs: dict[str, list[dict]] = {}
        for i in range(args.rounds):  # interleaved rounds: every tool under the same load
            for tool in TOOLS:
                runs.setdefault(tool, []).append(run([sys.executable, __file__, "--child", tool,
                                                      str(ref_path), str(cur_path)]))
            if python is not None and n <= args.evidently_max and i == 0:  # Evidently once: minutes a run
                runs["evidently"] = [run([str(python), "-c", EVIDENTLY_WRAPPER, str(HERE / "bench_drift_evidently.py"),
                                          str(ref_path), str(cur_path)])]
        rows.append(summarise(n, runs))
        report(rows[-1])
        (DATA / "bench_drift.json").write_text(json.dumps(rows, indent=1, default=str))
    for n in [int(s) for s in args.ks_sizes.split(",") if s]:
        r = run([sys.executable, __file__, "--ks-child", str(n)])
        rows.append({"ks_check": r})
        print(f"\n== KS only, {n:,} rows a side, 4 columns (normal, normal shifted 0.001 sd, exponential, Poisson) ==")
        print(f"tether (profiles + KS) {r['tether_seconds']:.2f} s, scipy ks_2samp {r['scipy_seconds']:.2f} s, "
              f"peak {r['peak_rss_mib']:.0f} MiB, load avg {r['load']:.2f}")
        for col, (mine, theirs) in r["p_values"].items():
            print(f"  {col:<13} tether p = {mine:.6g}   ks_2samp p = {theirs:.6g}   |diff| = {abs(mine - theirs):.1e}")
        (DATA / "bench_drift.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
