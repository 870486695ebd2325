"""Drift report speed: tether vs Evidently's DataDriftPreset vs a bare scipy computation.

    .venv/bin/python benchmarks/bench_drift.py [--sizes 200000,1000000] [--no-evidently]

Data: 20 numeric and 5 categorical columns, reference and current of the same size;
n00-n04 and c0 drift, the rest do not. Side by side, in one run:

* tether: the full default drift report (profiles of both sides, default tests, health
  checks, alert rules, plot data), in-process, from Arrow tables in memory;
* tether with KS + chi-squared + PSI, the same statistics as the bare scipy computation;
* bare scipy: ``ks_2samp`` + PSI (numpy, reference deciles) per numeric column and
  ``chi2_contingency`` per categorical one, from pandas frames in memory;
* Evidently 0.7.23 ``Report([DataDriftPreset()]).run`` in its own venv
  (``benchmarks/.venv-evidently``, created on first use, since Evidently needs pandas<3),
  timed inside that subprocess on the same Parquet files.

Verdicts are compared on every column where tether and Evidently use the same test
(by default both pick normed Wasserstein for numeric and Jensen-Shannon for categorical
columns above 1,000 reference rows).
"""

from __future__ import annotations

import argparse
import json
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
SAME_TEST = {"Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
             "K-S p_value": "ks", "chi-square p_value": "chi2", "PSI": "psi"}


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


def bare_scipy(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, float]:
    from scipy import stats

    out = {}
    for col in ref.columns:
        if col.startswith("n"):
            a, b = ref[col].to_numpy(), cur[col].to_numpy()
            out[f"{col}:ks"] = stats.ks_2samp(a, b).pvalue
            edges = np.unique(np.quantile(a, np.linspace(0, 1, 11)[1:-1]))
            ra = np.bincount(np.searchsorted(edges, a, side="left"), minlength=edges.size + 1) / a.size
            rb = np.bincount(np.searchsorted(edges, b, side="left"), minlength=edges.size + 1) / b.size
            ra, rb = np.maximum(ra, 1e-4), np.maximum(rb, 1e-4)
            out[f"{col}:psi"] = float(np.sum((rb - ra) * np.log(rb / ra)))
        else:
            table = pd.concat([ref[col].value_counts(), cur[col].value_counts()], axis=1).fillna(0).T.to_numpy()
            out[f"{col}:chi2"] = stats.chi2_contingency(table).pvalue
    return out


_HOST = None


def tether_report(ref_t: pa.Table, cur_t: pa.Table, tests=None):
    from tether.context import RunContext
    from tether.manager import PluginHost
    from tether.plugins.monitoring.monitor import DriftMonitor
    from tether.plugins.monitoring.params import DriftParams
    from tether.plugins.monitoring.profiles import profile_batches

    global _HOST
    host = _HOST = _HOST or PluginHost(entry_points=False)  # loaded once, like the imports
    monitor = DriftMonitor(drift=DriftParams(tests=tests or {}))
    ref = profile_batches([ref_t], **monitor.builder_args())
    return monitor.check(reference=ref, current_batches=[cur_t], context=RunContext(host=host, workspace=None),
                         reference_id="reference", current_id="current", send=False, launch=False)


def best_of(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def ensure_evidently() -> Path | None:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print("creating benchmarks/.venv-evidently (evidently==0.7.23, pandas<3) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run([str(EVIDENTLY_VENV / "bin" / "pip"), "install", "-q", "evidently==0.7.23", "pandas<3",
                        "pyarrow"], check=True)
    return python


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200000,1000000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-evidently", action="store_true")
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    python = None if args.no_evidently else ensure_evidently()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        ref, cur = make_frames(n)
        ref_path, cur_path = DATA / f"drift_ref_{n}.parquet", DATA / f"drift_cur_{n}.parquet"
        pq.write_table(pa.Table.from_pandas(ref, preserve_index=False), ref_path)
        pq.write_table(pa.Table.from_pandas(cur, preserve_index=False), cur_path)
        ref_t, cur_t = pq.read_table(ref_path), pq.read_table(cur_path)
        repeat = args.repeat if n <= 200_000 else 2
        like = {"*": ["ks", "psi"], **{f"c{j}": ["chi2", "psi"] for j in range(5)}}
        t_tether = t_like = t_scipy = float("inf")
        for _ in range(repeat):  # interleaved, best of each: fair under a fluctuating machine load
            t, report = best_of(lambda r=ref_t, c=cur_t: tether_report(r, c), 1)
            t_tether = min(t_tether, t)
            t, like_report = best_of(lambda r=ref_t, c=cur_t, t=like: tether_report(r, c, tests=t), 1)
            t_like = min(t_like, t)
            t, scipy_out = best_of(lambda r=ref, c=cur: bare_scipy(r, c), 1)
            t_scipy = min(t_scipy, t)
        # same statistics as bare scipy?
        worst = 0.0
        for r in like_report.results:
            key = f"{r.column}:{r.test}"
            if key in scipy_out:
                mine = r.p_value if r.p_value is not None else r.statistic
                worst = max(worst, abs(mine - scipy_out[key]) / max(abs(scipy_out[key]), 1e-300))
        flagged = set(report.details["drifted_columns"])
        row = {"rows": n, "tether": t_tether, "tether_ks_chi2_psi": t_like, "scipy": t_scipy,
               "max_rel_diff_vs_scipy": worst, "tether_flags": sorted(flagged),
               "flags_exactly_drifted": flagged == DRIFTED}
        if python is not None:
            proc = subprocess.run([str(python), str(HERE / "bench_drift_evidently.py"), str(ref_path), str(cur_path)],
                                  capture_output=True, text=True, check=True)
            ev = json.loads(proc.stdout.strip().splitlines()[-1])
            row["evidently"] = ev["seconds"]
            mine = {r.column: r for r in report.results}
            same, agree, methods = 0, 0, {}
            for col, e in ev["columns"].items():
                methods[e["method"]] = methods.get(e["method"], 0) + 1
                if col in mine and SAME_TEST.get(e["method"]) == mine[col].test:
                    same += 1
                    agree += e["drifted"] == mine[col].drifted
            row.update(evidently_methods=methods, same_test_columns=same, same_verdicts=agree,
                       evidently_flags=sorted(c for c, e in ev["columns"].items() if e["drifted"]))
        rows.append(row)
        print(f"\n== {n:,} reference x {n:,} current rows, 20 numeric + 5 categorical columns ==")
        print(f"{'tether drift report (default tests)':<44} {t_tether:8.3f} s")
        print(f"{'tether, KS + chi2 + PSI':<44} {t_like:8.3f} s   (max rel. diff vs scipy {worst:.1e})")
        print(f"{'bare scipy KS + chi2 + PSI':<44} {t_scipy:8.3f} s   tether is {t_scipy / t_tether:5.1f}x faster")
        if "evidently" in row:
            print(f"{'Evidently 0.7.23 DataDriftPreset':<44} {row['evidently']:8.3f} s   "
                  f"tether is {row['evidently'] / t_tether:5.1f}x faster")
            print(f"Evidently's tests: {row['evidently_methods']}")
            print(f"same test on {row['same_test_columns']} columns; same verdict on {row['same_verdicts']}")
            print(f"Evidently flags: {', '.join(row['evidently_flags'])}")
        print(f"tether flags:    {', '.join(row['tether_flags'])} (exactly the drifted columns: "
              f"{row['flags_exactly_drifted']})")
    (DATA / "bench_drift.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
