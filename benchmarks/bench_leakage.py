"""Benchmark: tether's leakage checks against the pandas/sklearn code a user would write.

Run from the repository root:

    .venv/bin/python benchmarks/bench_leakage.py            # 1,000,000 rows
    .venv/bin/python benchmarks/bench_leakage.py --rows 200000

1. Exact + near-duplicate detection across splits, ``rows`` x 30 columns (27 float, 2 int,
   1 text), 100 exact and 100 near copies (relative noise 1e-8, text re-cased) planted
   across splits. Baseline: ``DataFrame.duplicated`` for exact copies, and rounding to 6
   significant digits + ``merge`` of train against held-out rows for near copies.
2. Target-leakage scan of 100 numeric features against a binary label, 2 planted leaks.
   Baseline: ``sklearn.metrics.roc_auc_score`` per column.
"""

from __future__ import annotations

import argparse
import time

import conditions  # benchmarks/conditions.py: load average and peak memory
import numpy as np
import pandas as pd


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def duplicate_data(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    data = {f"f{i:02d}": rng.normal(100, 30, rows) for i in range(27)}
    data["i0"] = rng.integers(0, 1000, rows)
    data["i1"] = rng.integers(0, 50, rows)
    data["txt"] = rng.choice(["alpha", "beta gamma", "delta", "Epsilon", "zeta eta"], rows)
    frame = pd.DataFrame(data)
    splits = rng.choice(np.array(["train", "validation", "test"], dtype=object), rows, p=[0.7, 0.15, 0.15])
    train = np.flatnonzero(splits == "train")
    held = np.flatnonzero(splits != "train")
    src = rng.choice(train, 200, replace=False)
    dst = rng.choice(held, 200, replace=False)
    frame.iloc[dst[:100]] = frame.iloc[src[:100]].to_numpy()
    near = frame.iloc[src[100:]].copy()
    floats = [c for c in frame.columns if c.startswith("f")]
    near[floats] = near[floats] * (1 + rng.uniform(-1e-8, 1e-8, (100, len(floats))))
    near["txt"] = near["txt"].str.upper()
    frame.iloc[dst[100:]] = near.to_numpy()
    for c in floats:
        frame[c] = frame[c].astype("float64")
    frame["i0"] = frame["i0"].astype("int64")
    frame["i1"] = frame["i1"].astype("int64")
    return frame, splits


def pandas_duplicates(frame, splits):
    work = frame.assign(_split=splits)
    dup = work[work.duplicated(subset=list(frame.columns), keep=False)]
    across = dup.groupby(list(frame.columns), sort=False)["_split"].nunique()
    exact_groups = int((across > 1).sum())
    rounded = frame.copy()
    for c in frame.columns:
        if frame[c].dtype.kind == "f":
            v = frame[c].to_numpy()
            mag = 10.0 ** (5 - np.floor(np.log10(np.abs(np.where(v == 0, 1.0, v)))))
            rounded[c] = np.round(v * mag) / mag  # 6 significant digits, vectorised
        elif frame[c].dtype == object:
            rounded[c] = frame[c].str.lower().str.split().str.join(" ")
    rounded["_row"] = np.arange(len(frame))
    tr = rounded[splits == "train"]
    ho = rounded[splits != "train"]
    pairs = tr.merge(ho, on=list(frame.columns), suffixes=("_a", "_b"))
    return exact_groups, len(pairs)


def tether_duplicates(frame, splits):
    from tether.plugins.leakage.duplicates import ExactDuplicates
    from tether.plugins.leakage.input import LeakageInput
    from tether.plugins.leakage.near_duplicates import NearDuplicates

    data = LeakageInput(frame=frame, splits=splits)
    exact, t_exact = timed(lambda: ExactDuplicates().check(data))
    near, t_near = timed(lambda: NearDuplicates().check(data))
    print(f"  (tether exact_duplicates {t_exact:.2f} s, near_duplicates {t_near:.2f} s)")
    return exact[0].evidence["n_groups"] if exact else 0, near[0].evidence["n_pairs"] if near else 0


def target_data(rows: int, features: int = 100, seed: int = 1):
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.3).astype("int64")
    data = {f"x{i:03d}": rng.normal(0, 1, rows) + 0.05 * y for i in range(features - 2)}
    data["leak_a"] = y + rng.normal(0, 0.05, rows)
    data["leak_b"] = -3.0 * y + rng.normal(0, 0.1, rows)
    frame = pd.DataFrame(data)
    frame["label"] = y
    splits = rng.choice(np.array(["train", "validation", "test"], dtype=object), rows, p=[0.7, 0.15, 0.15])
    return frame, splits


def sklearn_target_scan(frame, label, threshold=0.98):
    from sklearn.metrics import roc_auc_score

    y = frame[label].to_numpy()
    flagged = []
    for c in frame.columns:
        if c == label:
            continue
        auc = roc_auc_score(y, frame[c].to_numpy())
        if max(auc, 1 - auc) >= threshold:
            flagged.append(c)
    return flagged


def tether_target_scan(frame, splits, label):
    from tether.plugins.leakage.input import LeakageInput
    from tether.plugins.leakage.target import TargetLeakage

    found = TargetLeakage().check(LeakageInput(frame=frame, splits=splits, label=label))
    return found[0].evidence["columns"] if found else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = args.rows

    frame, splits = duplicate_data(rows)
    print(f"duplicates across splits: {rows:,} rows x {frame.shape[1]} columns, 100 exact + 100 near copies planted")
    (t_exact, t_near), t_tether = timed(lambda: tether_duplicates(frame, splits))
    (p_exact, p_near), t_pandas = timed(lambda: pandas_duplicates(frame, splits))
    print(f"  tether exact+near : {t_tether:7.2f} s  (exact groups {t_exact}, near pairs {t_near})")
    print(f"  pandas dup+round  : {t_pandas:7.2f} s  (exact groups {p_exact}, rounded-merge pairs {p_near})")
    print(f"  ratio pandas/tether: {t_pandas / t_tether:.2f}x")
    del frame

    frame, splits = target_data(rows)
    print(f"target-leakage scan: {rows:,} rows x 100 features, binary label, 2 leaks planted")
    found, t_tether = timed(lambda: tether_target_scan(frame, splits, "label"))
    base, t_sklearn = timed(lambda: sklearn_target_scan(frame, "label"))
    print(f"  tether target_leakage       : {t_tether:7.2f} s  (flagged {sorted(found)})")
    print(f"  sklearn roc_auc_score/column: {t_sklearn:7.2f} s  (flagged {sorted(base)})")
    print(f"  ratio sklearn/tether: {t_sklearn / t_tether:.2f}x")


if __name__ == "__main__":
    main()
    print(f"machine: {conditions.describe()}")
