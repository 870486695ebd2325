"""The execution engines: every partitioned operation gives the local engine's result on a
Dask ``LocalCluster`` (2 worker processes, 1 thread each, started once for the module)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from engines_helpers import (
    kill_on_partition,
    read_folder,
    write_entities_and_features,
    write_partitioned,
)

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_partitioned(tmp_path_factory.mktemp("engines") / "events")


@pytest.fixture
def info_logs():
    """Log events at info level (progress lines) for ``capture_logs``; warnings again after."""
    from tether.log import configure_logging

    configure_logging(level="info")
    yield
    configure_logging(level="warning")


def chain_of(tmp_path: Path, data: Path, engine: dict | None) -> dict:
    chain = {"version": 1, "name": "engines", "workspace": str(tmp_path / ".tether"),
             "stages": [{"stage": "snapshot", "id": "events", "plugin": "parquet",
                         "params": {"path": str(data), "batch_rows": 256}}]}
    if engine is not None:
        chain["engine"] = engine
    return chain


def run(chain: dict, host):
    from tether.config import build_chain
    from tether.runner import run_chain

    return run_chain(build_chain(chain, host), host)


# --- snapshots ------------------------------------------------------------------------------


def test_snapshot_id_is_the_local_engines(engine, data, tmp_path, host):
    from tether.plugins.snapshots.create import create_snapshot

    local = create_snapshot(read_folder(data), name="events", workspace=tmp_path / "plain")
    spec = {"plugin": engine.name, "params": engine_params(engine)}
    record, outputs = run(chain_of(tmp_path, data, spec), host)
    assert record.status == "succeeded"
    snapshot = outputs["events"]
    assert snapshot.id == local.id and snapshot.fingerprint == local.fingerprint
    assert snapshot.num_rows == 2400


def test_engine_record_batches_stream_in_file_order(engine, data):
    import pyarrow as pa

    table = pa.Table.from_batches(list(engine.record_batches(data, batch_rows=100)))
    assert table.num_rows == 2400
    assert table.to_pandas().equals(read_folder(data))
    assert max(b.num_rows for b in engine.record_batches(data, batch_rows=100)) <= 100


# --- drift and data health --------------------------------------------------------------------


def test_profile_statistics_match_the_local_engine(engine, data, host):
    from tether.plugins.monitoring.compare import compare
    from tether.plugins.monitoring.profiles import profile_batches
    from tether.plugins.tables import read_parquet_batches

    local = profile_batches(read_parquet_batches(data), time_column="ts")
    other = engine.profile(data, time_column="ts")
    assert other.rows == local.rows == 2400
    assert set(other.columns) == set(local.columns) == {"a", "b", "colour", "split"}
    assert (other.time_min, other.time_max) == (local.time_min, local.time_max)
    for name in ("a", "b"):  # exact sketches: same values and counts, moments within float rounding
        mine, theirs = other.columns[name], local.columns[name]
        assert np.array_equal(mine.values, theirs.values) and np.array_equal(mine.counts, theirs.counts)
        assert mine.missing == theirs.missing
        assert mine.mean() == pytest.approx(theirs.mean(), rel=1e-12)
        assert mine.std() == pytest.approx(theirs.std(), rel=1e-12)
    assert other.columns["colour"].counts == local.columns["colour"].counts
    assert other.columns["colour"].missing == local.columns["colour"].missing > 0
    reference = profile_batches(read_parquet_batches(data), time_column="ts", sample_rows=0)
    mine, _ = compare(reference, other, backends=host.backends)
    theirs, _ = compare(reference, local, backends=host.backends)
    assert [(r.column, r.test) for r in mine] == [(r.column, r.test) for r in theirs]
    for a, b in zip(mine, theirs):
        assert a.statistic == pytest.approx(b.statistic, abs=1e-12)


def test_compressed_sketches_stay_within_their_rank_error(engine, data):
    local = engine.profile(data, sketch_size=8)
    sketch = local.columns["b"]
    assert sketch.compressed and sketch.rank_error is not None
    exact = np.sort(read_folder(data)["b"].dropna().to_numpy())
    for value, cum in zip(sketch.values, np.cumsum(sketch.counts)):
        truth = np.searchsorted(exact, value, side="right")
        assert truth - sketch.rank_error <= cum <= truth


# --- leakage --------------------------------------------------------------------------------


def test_exact_duplicates_match_the_local_check(engine, data):
    from tether.plugins.leakage.duplicates import ExactDuplicates
    from tether.plugins.leakage.input import LeakageInput

    frame = read_folder(data)
    check = ExactDuplicates()
    expected = check.check(LeakageInput(frame=frame.drop(columns="split"), splits=frame["split"].to_numpy()))
    found = check.findings(engine.exact_duplicates(data, split_column="split"))
    assert expected and found == expected
    assert found[0].evidence["n_groups"] >= 5


def test_exact_duplicates_ignore_columns(engine, data):
    found = engine.exact_duplicates(data, split_column="split", ignore_columns=("b", "ts", "colour"))
    everything = engine.exact_duplicates(data, split_column="split")
    assert found.groups > everything.groups  # fewer columns compared: more rows look alike
    assert found.columns == ("a",)


# --- point-in-time join ------------------------------------------------------------------------


def test_point_in_time_join_matches_the_local_join(engine, tmp_path):
    import pandas as pd
    from tether.plugins.engines.work import ENTITY_ROW
    from tether.plugins.features.pit import point_in_time_join

    entities, features = write_entities_and_features(tmp_path)
    join = {"entity": "id", "prediction_time": "ts", "lag": "1d", "ttl": "20d"}
    expected = point_in_time_join(read_folder(entities), read_folder(features), **join)
    out = engine.point_in_time_join(entities, features, output=tmp_path / "joined", **join)
    parts = [pd.read_parquet(p) for p in out["parts"]]
    assert out["rows"] == len(expected) == 600
    for part in parts:  # each part holds whole entities, in entity row order
        assert part[ENTITY_ROW].is_monotonic_increasing
    ids = [set(p["id"]) for p in parts]
    assert sum(len(i) for i in ids) == len(set().union(*ids))
    joined = pd.concat(parts).sort_values(ENTITY_ROW).drop(columns=ENTITY_ROW).reset_index(drop=True)
    pd.testing.assert_frame_equal(joined, expected)
    assert joined["spend"].notna().sum() > 100 and joined["spend"].isna().sum() > 10


def test_point_in_time_join_ambiguous_rows_fail_as_locally(engine, tmp_path):
    import pandas as pd
    from tether.errors import DataError

    entities, features = write_entities_and_features(tmp_path)
    first = pd.read_parquet(features / "part-0.parquet")
    pd.concat([first, first.iloc[:1]]).to_parquet(features / "part-0.parquet", index=False)
    row = first.iloc[0]  # an entity row that uses the repeated feature row
    pd.DataFrame({"id": [row["id"]], "ts": [row["feature_timestamp"] + pd.Timedelta("30min")],
                  "label": [1]}).to_parquet(entities / "part-9.parquet", index=False)
    with pytest.raises(DataError, match="same entity and feature timestamp|ambiguous|duplicate"):
        engine.point_in_time_join(entities, features, output=tmp_path / "joined", entity="id",
                                  prediction_time="ts")
    assert not (tmp_path / "joined").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".joined")] == []


# --- batch scoring --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scoring(tmp_path_factory):
    from deploy_helpers import build_project
    from tether.manager import PluginHost
    from tether.plugins.bundles import load_bundle
    from tether.plugins.snapshots.read import write_snapshot
    from tether.workspace import Workspace

    root = tmp_path_factory.mktemp("scoring")
    ids = build_project(root)
    ws = Workspace.open(PluginHost(entry_points=False), root / ".tether")
    table_path = write_snapshot(ws, ws.store.get(ids["scoring"], kind="snapshot"), root / "scoring.parquet")
    folder = root / "scoring"
    folder.mkdir()
    frame = read_folder(table_path)
    for i, start in enumerate(range(0, len(frame), 100)):
        frame.iloc[start:start + 100].to_parquet(folder / f"part-{i}.parquet", index=False)
    bundle = load_bundle(ws, ids["mv1"], unseen="ignore")
    yield bundle, folder, ids["mv1"], ws
    ws.close()


def test_scoring_predictions_match_the_local_rollout(engine, scoring, tmp_path):
    import pandas as pd
    from tether.plugins.rollout.batch import write_predictions
    from tether.plugins.tables import read_parquet_batches

    bundle, folder, version, _ws = scoring
    reference = tmp_path / "reference.parquet"
    expected = write_predictions(read_parquet_batches(folder), bundle, ["customer_id"], version, reference)
    stats = engine.score(folder, bundle, kept=["customer_id"], version_id=version, output=tmp_path / "out")
    assert stats["rows"] == expected["rows"] == 300
    assert [Path(p).name for p in stats["parts"]] == [f"part-{i:05d}.parquet" for i in range(3)]
    scored = pd.concat([pd.read_parquet(p) for p in stats["parts"]], ignore_index=True)
    pd.testing.assert_frame_equal(scored, pd.read_parquet(reference))
    assert stats["positive_rate"] == pytest.approx(expected["positive_rate"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging left


def test_scoring_refuses_an_existing_output(engine, scoring, tmp_path):
    from tether.errors import DataError

    bundle, folder, version, _ws = scoring
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="already exists"):
        engine.score(folder, bundle, kept=[], version_id=version, output=tmp_path / "out")


def test_batch_rollout_scores_a_parquet_source_on_the_engine(engine, scoring, tmp_path, host):
    import pandas as pd
    from tether.context import RunContext
    from tether.plugins.rollout.batch import BatchRollout

    _bundle, folder, version, ws = scoring
    mv = ws.store.get(version, kind="model_version")
    rollout = BatchRollout(source=str(folder), output=str(tmp_path / "predictions"), keep_columns=("customer_id",),
                           unseen="ignore", progress=False)
    here = rollout.deploy(mv, None, context=RunContext(host=host, workspace=ws))
    there = rollout.deploy(mv, None, context=RunContext(host=host, workspace=ws, engine=engine))
    expected = pd.read_parquet(here.location)
    scored = pd.concat([ws.read_table(ref).to_pandas() for ref in there.outputs], ignore_index=True)
    pd.testing.assert_frame_equal(scored, expected)
    assert len(there.outputs) == (3 if engine.name == "dask" else 1)
    assert there.details["rows"] == here.details["rows"] == 300
    assert there.details["positive_rate"] == pytest.approx(here.details["positive_rate"])


MONITOR_STAGE = {"stage": "monitor", "plugin": "drift", "inputs": {"reference": "events"},
                 "params": {"windows": {"current": {"plugin": "file", "params": {"path": "CURRENT"}}}}}


def test_monitor_stage_profiles_the_current_window_on_the_engine(engine, data, tmp_path, host, info_logs):
    from structlog.testing import capture_logs

    current = write_partitioned(tmp_path / "current", files=3, rows=500, seed=7)
    reports = {}
    for name, spec in (("local", None), (engine.name, {"plugin": engine.name, "params": engine_params(engine)})):
        chain = chain_of(tmp_path / name, data, spec)
        monitor = json.loads(json.dumps(MONITOR_STAGE).replace("CURRENT", str(current)))
        chain["stages"].append(monitor)
        with capture_logs() as logs:
            record, outputs = run(chain, host)
        assert record.status == "succeeded", record.error
        reports[name] = outputs["monitor"]
        operations = {e["operation"] for e in logs if e["event"] == "partitions done"}
        assert operations == ({"read", "profile"} if name == "dask" else set())
    here, there = reports["local"], reports[engine.name]
    assert there.details["current_rows"] == here.details["current_rows"] == 1500
    assert [(r.column, r.test, r.drifted) for r in there.results] == [(r.column, r.test, r.drifted)
                                                                       for r in here.results]
    for a, b in zip(there.results, here.results):
        assert a.statistic == pytest.approx(b.statistic, abs=1e-12)
    assert [f.check for f in there.findings] == [f.check for f in here.findings]


def test_stage_without_a_partitioned_version_logs_that_it_runs_locally(cluster, data, tmp_path, host):
    from structlog.testing import capture_logs

    read_folder(data).to_csv(tmp_path / "events.csv", index=False)
    chain = chain_of(tmp_path, data, {"plugin": "dask", "params": {"address": cluster.scheduler_address}})
    chain["stages"].append({"stage": "snapshot", "id": "csv", "plugin": "csv", "params": {"path": "events.csv"}})
    from tether.config import build_chain
    from tether.runner import run_chain

    with capture_logs() as logs:
        record, _ = run_chain(build_chain(chain, host, base_dir=tmp_path), host)
    assert record.status == "succeeded"
    lines = [e for e in logs if e["event"] == "stage runs locally"]
    assert [e["stage"] for e in lines] == ["csv"]
    assert lines[0]["engine"] == "dask" and "has no partitioned version" in lines[0]["reason"]


def test_a_third_party_engine_stands_in_and_may_decline(data, tmp_path, host):
    from typing import ClassVar

    import attrs
    from structlog.testing import capture_logs
    from tether.backends import Engine
    from tether.plugins.tables import read_parquet_batches

    @attrs.frozen(kw_only=True)
    class TinyBatches(Engine):
        name: ClassVar[str] = "tiny"
        operations: ClassVar[frozenset[str]] = frozenset({"read"})

        def record_batches(self, path, *, batch_rows):
            return read_parquet_batches(Path(path), batch_rows=7)

        def describe(self):
            return "batches of 7 rows"

    host.backends.add(TinyBatches)
    current = write_partitioned(tmp_path / "current", files=2, rows=300, seed=3)
    chain = chain_of(tmp_path / "tiny", data, {"plugin": "tiny"})
    chain["stages"].append(json.loads(json.dumps(MONITOR_STAGE).replace("CURRENT", str(current))))
    with capture_logs() as logs:
        record, outputs = run(chain, host)
    assert record.status == "succeeded", record.error
    _, local = run(chain_of(tmp_path / "here", data, None), host)
    assert outputs["events"].id == local["events"].id
    lines = [e for e in logs if e["event"] == "stage runs locally"]
    assert [(e["stage"], e["engine"]) for e in lines] == [("monitor", "tiny")]
    assert "does not run 'profile'" in lines[0]["reason"]
    assert outputs["monitor"].details["current_rows"] == 600


def engine_params(engine) -> dict:
    return {"address": engine.address} if engine.name == "dask" else {}


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("params, key, message", [
    ({"workers": 0}, "engine.params.workers", "at least 1"),
    ({"workers": "two"}, "engine.params.workers", "int"),
    ({"memory_limit": "lots"}, "engine.params.memory_limit", "2GiB"),
    ({"address": "scheduler:8786"}, "engine.params.address", "tcp://"),
    ({"address": "tcp://h:8786", "workers": 2}, "engine.params", "not both"),
    ({"adress": "tcp://h:8786"}, "engine.params", "unknown parameter 'adress'"),
])
def test_bad_engine_config_names_the_key(params, key, message, host, tmp_path, data):
    from tether.config import build_chain
    from tether.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        build_chain(chain_of(tmp_path, data, {"plugin": "dask", "params": params}), host)
    assert key in str(info.value) and message in str(info.value)
    assert not (tmp_path / ".tether").exists()


def test_unknown_engine_plugin(host, tmp_path, data):
    from tether.config import build_chain
    from tether.errors import PluginError

    with pytest.raises(PluginError, match=r"engine.plugin: unknown engine plugin 'dsk'; did you mean 'dask'"):
        build_chain(chain_of(tmp_path, data, {"plugin": "dsk"}), host)


def test_declined_operation_runs_locally_with_one_log_line(host, workspace, cluster):
    from structlog.testing import capture_logs
    from tether.config import StageConfig
    from tether.context import RunContext

    engine = host.backends.create("engine", "dask", {"address": cluster.scheduler_address})
    stage = StageConfig(index=0, id="split", stage="split", plugin="random")
    context = RunContext(host=host, workspace=workspace, engine=engine, stage=stage)
    with capture_logs() as logs:
        assert context.engine_for("temporal_order", what="temporal-order leakage check") is None
        assert context.engine_for("read") is engine
    lines = [e for e in logs if e["event"] == "stage runs locally"]
    assert len(lines) == 1 and lines[0]["stage"] == "split" and "temporal_order" in lines[0]["reason"]
    assert RunContext(host=host, workspace=workspace).engine_for("read") is None  # no engine: local


def test_cli_engine_overrides_the_chain(tether_cli, tmp_path, data, cluster):
    chain = chain_of(tmp_path, data, {"plugin": "dask", "params": {"address": "tcp://127.0.0.1:1"}})
    path = tmp_path / "chain.yaml"  # JSON is YAML
    path.write_text(json.dumps(chain))
    result = tether_cli("run", path, "--engine", "local", "--json")
    assert result.exit_code == 0, result
    snapshot = json.loads(result.stdout)["outputs"]["events"]["data"]
    chain["engine"]["params"]["address"] = cluster.scheduler_address
    path.write_text(json.dumps(chain))
    result = tether_cli("--log-level", "info", "run", path, "--json")
    assert result.exit_code == 0, result
    assert json.loads(result.stdout)["outputs"]["events"]["data"]["id"] == snapshot["id"]
    assert "partitions done" in result.stderr
    bad = tether_cli("run", path, "--engine", "spark")
    assert bad.exit_code != 0
    assert "tether: error: --engine: unknown engine plugin 'spark' (available: dask, local)" in bad.stderr


# --- failures -------------------------------------------------------------------------------


def test_killed_worker_is_an_engine_error_and_records_nothing(cluster, data, tmp_path, host):
    from distributed import Client
    from tether.errors import EngineError
    from tether.manager import PluginHost
    from tether.workspace import Workspace

    client = Client(cluster, set_as_default=False)
    plugin = kill_on_partition(1)
    client.register_plugin(plugin, name=plugin.name)
    try:
        with pytest.raises(EngineError, match="a worker died while running 'read'"):
            run(chain_of(tmp_path, data, {"plugin": "dask", "params": {"address": cluster.scheduler_address}}), host)
    finally:
        client.unregister_worker_plugin(plugin.name)
        client.close()
    ws = Workspace.open(PluginHost(entry_points=False), tmp_path / ".tether")
    try:
        assert ws.store.find("snapshot") == []
        assert ws.store.find("run")[0].status == "failed"
    finally:
        ws.close()
    leftovers = [p for p in (tmp_path / ".tether").rglob("*.parquet")]
    assert leftovers == []
    shutil.rmtree(tmp_path / ".tether")


def test_unreachable_scheduler_is_an_engine_error(tether_cli, tmp_path, data):
    chain = chain_of(tmp_path, data, {"plugin": "dask", "params": {"address": "tcp://127.0.0.1:9", "timeout": 2}})
    (tmp_path / "chain.yaml").write_text(json.dumps(chain))
    result = tether_cli("run", "chain.yaml")
    assert result.exit_code != 0
    assert "tether: error: stages[0] (events): dask engine: cannot reach the scheduler at tcp://127.0.0.1:9" \
        in result.stderr, result
    assert "Traceback" not in result.stderr
