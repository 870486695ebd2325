"""Benchmark: one evaluation of 1,000,000 binary predictions with 10 slices and 1,000
bootstrap resamples, against the loop a user would write.

Run from the repository root:

    .venv/bin/python benchmarks/bench_evaluation.py                  # 1,000,000 rows
    .venv/bin/python benchmarks/bench_evaluation.py --rows 100000 --loop-resamples 5

tether: ``tether.evaluate(y, score, data=frame, slices=[{"column": "segment"}])`` - the
metrics, the 95 % bootstrap intervals of nine metrics overall and in each of the 10
segments (1,000 resamples), the dummy baseline, curves, calibration, threshold sweep and
error examples.

Baseline: what a user writes without tether - for the whole set and each segment, draw
row indices with replacement and call scikit-learn's metric functions on every resample
(``roc_auc_score``, ``accuracy_score``, ``balanced_accuracy_score``, ``precision_score``,
``recall_score``, ``f1_score``, ``brier_score_loss``, ``log_loss`` and the positive rate),
then take percentiles. At 1,000,000 rows that loop takes hours, so it runs
``--loop-resamples`` resamples per segment and its time is extrapolated linearly to 1,000
(the per-resample cost does not depend on the resample count); the output says so.

Rounds are interleaved (tether, loop, tether, loop ...).
"""

from __future__ import annotations

import argparse
import time

import conditions  # benchmarks/conditions.py: load average and peak memory
import numpy as np
import pandas as pd

RESAMPLES = 1000
SEGMENTS = 10


def data(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    segment = rng.choice(np.array([f"s{i}" for i in range(SEGMENTS)], dtype=object), rows)
    signal = rng.normal(size=rows)
    y = (signal + rng.normal(scale=0.8, size=rows) > 0.3).astype("int64")
    score = 1 / (1 + np.exp(-2 * signal))
    return y, score, pd.DataFrame({"segment": segment})


def tether_run(y, score, frame):
    import tether

    ev = tether.evaluate(y, score, data=frame, slices=[{"column": "segment"}], resamples=RESAMPLES, seed=0)
    return ev, sum(len(s.intervals) for s in ev.slices) + len(ev.intervals)


def user_loop(y, score, frame, resamples: int):
    """The plain bootstrap: sklearn metrics on resampled rows, per segment and overall."""
    from sklearn import metrics as m

    rng = np.random.default_rng(0)
    pred = (score >= 0.5).astype("int64")
    groups = [np.arange(len(y))] + [np.flatnonzero(frame["segment"].to_numpy() == s)
                                    for s in sorted(frame["segment"].unique())]
    intervals = 0
    for rows in groups:
        values: dict[str, list[float]] = {}
        for _ in range(resamples):
            i = rows[rng.integers(0, len(rows), len(rows))]
            yi, si, pi = y[i], score[i], pred[i]
            for name, value in (("roc_auc", m.roc_auc_score(yi, si)), ("accuracy", m.accuracy_score(yi, pi)),
                                ("balanced_accuracy", m.balanced_accuracy_score(yi, pi)),
                                ("precision", m.precision_score(yi, pi, zero_division=0)),
                                ("recall", m.recall_score(yi, pi)), ("f1", m.f1_score(yi, pi)),
                                ("brier", m.brier_score_loss(yi, si)), ("log_loss", m.log_loss(yi, si)),
                                ("positive_rate", pi.mean())):
                values.setdefault(name, []).append(value)
        intervals += len({k: np.percentile(v, [2.5, 97.5]) for k, v in values.items()})
    return intervals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loop-resamples", type=int, default=3,
                        help="resamples per segment the plain loop runs (its time is extrapolated to 1,000)")
    args = parser.parse_args()
    y, score, frame = data(args.rows)
    print(f"{args.rows:,} binary predictions, {SEGMENTS} segments, {RESAMPLES:,} bootstrap resamples")
    tether_run(y[:2000], score[:2000], frame[:2000])  # imports and first-call costs out of the timing
    tether_times, tether_cpu, loop_times = [], [], []
    for _ in range(args.rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        ev, n_tether = tether_run(y, score, frame)
        tether_times.append(time.perf_counter() - t0)
        tether_cpu.append(time.process_time() - c0)
        t0 = time.perf_counter()
        n_loop = user_loop(y, score, frame, args.loop_resamples)
        loop_times.append((time.perf_counter() - t0) * RESAMPLES / args.loop_resamples)
    t_tether, t_loop = min(tether_times), min(loop_times)
    print(f"  tether.evaluate          : {t_tether:8.2f} s  ({n_tether} intervals; rounds "
          f"{', '.join(f'{t:.2f}' for t in tether_times)} s; target < 30 s)")
    print(f"  tether.evaluate CPU time : {min(tether_cpu):8.2f} s  (this process's CPU seconds: the wall time on an "
          "idle machine, as the work is single-threaded)")
    print(f"  sklearn bootstrap loop   : {t_loop:8.1f} s  ({n_loop} intervals; extrapolated from "
          f"{args.loop_resamples} to {RESAMPLES:,} resamples per segment; rounds "
          f"{', '.join(f'{t:.1f}' for t in loop_times)} s)")
    print(f"  ratio loop/tether: {t_loop / t_tether:.0f}x")
    south = ev.slices[0]
    print(f"  e.g. segment {south.segment}: roc_auc {south.metrics['roc_auc']:.4f} "
          f"[{south.intervals['roc_auc'][0]:.4f}, {south.intervals['roc_auc'][1]:.4f}] "
          f"({ev.bootstrap['method']['roc_auc']})")


if __name__ == "__main__":
    main()
    print(f"machine: {conditions.describe()}")
