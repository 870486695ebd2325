"""The profile's row sample on every engine: bottom-k of a hash of each row's global row
number, so it is the same rows in the same order whichever way the rows are cut into
batches or partitions, and multivariate drift tests run on the Dask engine with the local
result (one ``LocalCluster`` for the module)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from engines_helpers import read_folder, write_partitioned

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_partitioned(tmp_path_factory.mktemp("profiles") / "events", files=5, rows=700)


def local_sample(data: Path, batch_rows: int, sample_rows: int = 200, seed: int = 0):
    from tether.plugins.monitoring.profiles import profile_batches
    from tether.plugins.tables import read_parquet_batches

    return profile_batches(read_parquet_batches(data, batch_rows=batch_rows), sample_rows=sample_rows, seed=seed)


# --- the sample itself ------------------------------------------------------------------------


def test_sample_is_the_same_rows_in_the_same_order_whatever_the_batches(data):
    frame = read_folder(data)
    whole = local_sample(data, batch_rows=1 << 20)
    assert whole.sample.num_rows == 200
    rows = whole.row_sample.rows
    assert np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < len(frame)  # row order, no repeats
    assert whole.sample.to_pandas().equals(frame.iloc[rows].reset_index(drop=True))  # the rows they claim
    for batch_rows in (1, 37, 256, 700):
        other = local_sample(data, batch_rows=batch_rows)
        assert other.sample.equals(whole.sample), batch_rows
        assert np.array_equal(other.row_sample.keys, whole.row_sample.keys)
    assert not local_sample(data, batch_rows=256, seed=1).sample.equals(whole.sample)  # the seed matters


def test_sample_keeps_the_smallest_keys_and_is_uniform_over_rows():
    import pyarrow as pa
    from tether.plugins.monitoring.profiles import profile_batches
    from tether.plugins.monitoring.samples import row_keys

    n, k = 100_000, 2_000
    table = pa.table({"x": np.arange(n)})
    profile = profile_batches(table.to_batches(max_chunksize=3_000), sample_rows=k, seed=3)
    want = np.sort(np.argsort(row_keys(np.arange(n), 3))[:k])
    assert np.array_equal(profile.row_sample.rows, want)
    assert np.array_equal(profile.sample.column("x").to_numpy(), want)
    counts, _ = np.histogram(want, bins=10, range=(0, n))  # 200 expected per tenth of the rows
    assert counts.min() > 140 and counts.max() < 260
    assert np.unique(row_keys(np.arange(1_000_000))).size == 1_000_000  # a bijection: keys never tie


def test_merged_samples_equal_the_sample_of_all_rows(data):
    from tether.plugins.engines.partitions import plan
    from tether.plugins.engines.work import profile_partition
    from tether.plugins.monitoring.profiles import merge_profiles

    layout, offset, parts = plan(data), 0, []
    for part in layout.partitions:
        parts.append(profile_partition(part, layout.schema, {"sample_rows": 200}, offset))
        offset += parts[-1].rows
    whole = local_sample(data, batch_rows=300)
    for merged in (merge_profiles(parts), merge_profiles(parts[::-1]),
                   merge_profiles([merge_profiles(parts[:2]), merge_profiles(parts[2:])])):
        assert merged.rows == whole.rows == 3500
        assert merged.sample.equals(whole.sample)


def test_window_profiles_merge_into_the_sample_of_the_whole_window(data):
    from tether.plugins.monitoring.profiles import merge_profiles, profile_windows
    from tether.plugins.tables import read_parquet_batches

    windows = profile_windows(read_parquet_batches(data, batch_rows=500), every="weekly", time_column="ts",
                              sample_rows=200)
    assert len(windows) > 10
    assert merge_profiles(windows).sample.equals(local_sample(data, batch_rows=999).sample)


def test_a_stored_sample_without_keys_is_not_merged(data):
    import attrs
    from tether.plugins.monitoring.profiles import merge_profiles

    profile = local_sample(data, batch_rows=256)
    stored = attrs.evolve(profile, row_sample=None)  # what load_profile returns: the rows only
    merged = merge_profiles([profile, stored])
    assert merged.rows == 2 * profile.rows and merged.sample is None and merged.row_sample is None


def test_dask_engine_keeps_the_local_sample(cluster, data, host):
    engine = host.backends.create("engine", "dask", {"address": cluster.scheduler_address})
    try:
        for sample_rows in (200, 5_000):  # fewer rows than the data, and all of them
            local = host.backends.create("engine", "local", {}).profile(data, time_column="ts",
                                                                        sample_rows=sample_rows)
            there = engine.profile(data, time_column="ts", sample_rows=sample_rows)
            assert there.sample.num_rows == min(sample_rows, 3500)
            assert there.sample.equals(local.sample)
            assert there.sample.equals(local_sample(data, batch_rows=111, sample_rows=sample_rows).sample)
        assert there.sample.to_pandas().equals(read_folder(data))  # a sample of every row: the data, in order
        assert engine.profile(data, sample_rows=0).sample is None
    finally:
        engine.close()


# --- a monitor chain ---------------------------------------------------------------------------


def chain_of(root: Path, data: Path, current: Path, engine: dict | None) -> dict:
    monitor = {"stage": "monitor", "plugin": "drift", "inputs": {"reference": "events"},
               "params": {"drift": {"multivariate": ["domain_classifier"], "sample_rows": 400},
                          "windows": {"current": {"plugin": "file", "params": {"path": str(current)}}}}}
    chain = {"version": 1, "name": "multivariate", "workspace": str(root / ".tether"),
             "stages": [{"stage": "snapshot", "id": "events", "plugin": "parquet", "params": {"path": str(data)}},
                        monitor]}
    if engine is not None:
        chain["engine"] = engine
    return chain


def test_multivariate_drift_on_the_dask_engine_gives_the_local_result(cluster, data, tmp_path, host):
    from structlog.testing import capture_logs
    from tether.config import build_chain
    from tether.log import configure_logging
    from tether.runner import run_chain

    current = write_partitioned(tmp_path / "current", files=3, rows=500, seed=7)
    reports, logs = {}, {}
    configure_logging(level="info")
    try:
        for name, engine in (("local", None), ("dask", {"plugin": "dask",
                                                         "params": {"address": cluster.scheduler_address}})):
            chain = json.loads(json.dumps(chain_of(tmp_path / name, data, current, engine)))
            with capture_logs() as logs[name]:
                record, outputs = run_chain(build_chain(chain, host), host)
            assert record.status == "succeeded", record.error
            reports[name] = outputs["monitor"]
    finally:
        configure_logging(level="warning")
    assert not [e for e in logs["dask"] if e["event"] == "stage runs locally"]
    assert {e["operation"] for e in logs["dask"] if e["event"] == "partitions done"} == {"read", "profile"}
    here, there = reports["local"], reports["dask"]
    multivariate = [r for r in there.results if r.test == "domain_classifier"]
    assert len(multivariate) == 1 and multivariate[0].n_current == 400
    assert [(r.column, r.test, r.statistic, r.drifted) for r in there.results] == \
        [(r.column, r.test, r.statistic, r.drifted) for r in here.results]
    assert [f.check for f in there.findings] == [f.check for f in here.findings]
    assert "drift.no_sample" not in [f.check for f in there.findings]
