"""Data and a cluster for the engine tests: small partitioned Parquet folders, and a
``distributed.LocalCluster`` (2 worker processes, 1 thread each) per test module."""

from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "validation", "test")


def write_partitioned(folder: Path, *, files: int = 4, rows: int = 600, seed: int = 0) -> Path:
    """``files`` Parquet files of ``rows`` rows: ints, floats with nulls, text, timestamps and
    a ``split`` column; values repeat so identical rows land in different splits."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        b = rng.normal(size=rows).round(1)
        b[rng.random(rows) < 0.05] = np.nan
        frame = pd.DataFrame({
            "a": rng.integers(0, 15, rows),
            "b": b,
            "colour": rng.choice(["red", "green", "blue", None], rows),
            "ts": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 90, rows), unit="D"),
            "split": rng.choice(SPLITS, rows, p=[0.6, 0.2, 0.2]),
        })
        frame.to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    return folder


def write_entities_and_features(root: Path, *, seed: int = 0) -> tuple[Path, Path]:
    """An entity table (3 files: ``id``, prediction time ``ts``, ``label``) and a feature
    table (2 files: ``id``, ``feature_timestamp``, ``spend``, ``plan``) of 40 entities."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    for name, files, rows in (("entities", 3, 200), ("features", 2, 300)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(files):
            ids = rng.integers(0, 40, rows)
            hours = rng.integers(0, 30 * 24, rows) * 2 + i  # each feature file its own hours: no ties
            times = start + pd.to_timedelta(hours, unit="h")
            if name == "entities":
                frame = pd.DataFrame({"id": ids, "ts": times, "label": rng.integers(0, 2, rows)})
            else:  # one row per (id, time): no ambiguous ties
                frame = pd.DataFrame({"id": ids, "feature_timestamp": times, "spend": rng.normal(50, 10, rows),
                                      "plan": rng.choice(["basic", "pro"], rows)})
                frame = frame.drop_duplicates(["id", "feature_timestamp"])
            frame.to_parquet(root / name / f"part-{i}.parquet", index=False)
    return root / "entities", root / "features"


def read_folder(folder: Path):
    """The folder as one pandas frame, files in path order (the local reader's order)."""
    from tether.plugins.tables import read_file_table

    return read_file_table(folder).to_pandas()


def start_cluster():
    """A LocalCluster of 2 worker processes with 1 thread each; a task whose worker dies
    fails at once (no retry on another worker), so a killed worker surfaces as an error."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                            memory_limit="1GiB")


def kill_on_partition(index: int, operation: str = "read"):
    """A worker plugin that kills its worker process when the task of ``operation`` (``read``,
    or ``write_parts`` for a snapshot part) on partition ``index`` starts (every attempt, on
    every worker): a worker lost mid-operation."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class KillOnPartition(WorkerPlugin):
        name = "tether-test-kill"

        def transition(self, key, start, finish, **kwargs) -> None:
            import os

            if finish == "executing" and str(key).startswith(f"tether-{operation}-{index:05d}-"):
                os._exit(1)

    return KillOnPartition()
