"""Snapshots on the Dask engine: the workers encode the Parquet objects (``write_parts``),
the client only fingerprints and summarizes, and the snapshot is the local engine's (same
id, same rows); failures and garbage collection leave nothing behind and lose nothing.
One ``LocalCluster`` (2 worker processes, 1 thread each) for the module."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engines_helpers import kill_on_partition

pytest.importorskip("distributed")

#: non-empty input files (the folder also holds one file without rows)
FILES = 4
ROWS = 500


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A hive-partitioned folder: ints, floats and text with nulls, a dictionary column,
    second-resolution timestamps (stored as milliseconds) and a file without rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("engines-snapshots") / "events"
    rng = np.random.default_rng(11)
    for i in range(FILES):
        amount = rng.normal(size=ROWS).round(3)
        table = pa.table({
            "id": pa.array(np.arange(i * ROWS, (i + 1) * ROWS)),
            "amount": pa.array(amount, mask=rng.random(ROWS) < 0.1),
            "plan": pa.array(rng.choice(["basic", "pro", "team"], ROWS)).dictionary_encode(),
            "note": pa.array([None if r < 0.2 else f"n{int(r * 50)}" for r in rng.random(ROWS)]),
            "seen": pa.array(rng.integers(1_700_000_000, 1_800_000_000, ROWS), pa.timestamp("s", tz="UTC")),
        })
        folder = root / f"region={'eu' if i < 2 else 'us'}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"part-{i}.parquet")
        if i == FILES - 1:
            pq.write_table(table.slice(0, 0), folder / "part-9.parquet")  # a partition without rows
    return root


def chain_of(workspace: Path, data: Path, engine: dict | None, **stage) -> dict:
    chain = {"version": 1, "name": "engines-snapshots", "workspace": str(workspace),
             "stages": [{"stage": "snapshot", "id": "events", "plugin": "parquet",
                         "params": {"path": str(data), **stage}}]}
    if engine is not None:
        chain["engine"] = engine
    return chain


def dask(cluster) -> dict:
    return {"plugin": "dask", "params": {"address": cluster.scheduler_address}}


def run(chain: dict, host):
    from tether.config import build_chain
    from tether.runner import run_chain

    return run_chain(build_chain(chain, host), host)


def opened(host, root: Path):
    from tether.workspace import Workspace

    return Workspace.open(host, root)


def temp_files(workspace: Path) -> list[str]:
    tmp = workspace / "objects" / ".tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def object_keys(workspace: Path) -> set[str]:
    objects = workspace / "objects"
    return {p.relative_to(objects).as_posix() for p in objects.rglob("*.parquet") if ".tmp" not in p.parts}


@pytest.fixture(scope="module")
def local_snapshot(data, tmp_path_factory):
    """The snapshot the local engine takes of ``data``, and its rows as a frame."""
    from tether.manager import PluginHost

    host = PluginHost(entry_points=False)
    root = tmp_path_factory.mktemp("local") / ".tether"
    record, outputs = run(chain_of(root, data, None, time_column="seen", key=["id"]), host)
    assert record.status == "succeeded", record.error
    ws = opened(host, root)
    try:
        return outputs["events"], ws.read_snapshot(outputs["events"])
    finally:
        ws.close()


def test_workers_write_the_local_engines_snapshot(cluster, data, local_snapshot, tmp_path, host):
    import attrs
    import pandas as pd
    import pyarrow.parquet as pq

    local, local_frame = local_snapshot
    root = tmp_path / ".tether"
    record, outputs = run(chain_of(root, data, dask(cluster), time_column="seen", key=["id"]), host)
    assert record.status == "succeeded", record.error
    snap = outputs["events"]
    assert (snap.id, snap.fingerprint, snap.num_rows) == (local.id, local.fingerprint, FILES * ROWS)
    assert snap.columns == local.columns
    assert [c.type for c in snap.columns if c.name == "seen"] == ["timestamp[ms, tz=UTC]"]  # cast on the workers
    # one object per non-empty input partition, written by the workers (the client's writer
    # would have put these 2,000 rows into a single object, as it did for the local snapshot)
    assert len(local.objects) == 1
    assert snap.object_rows == (ROWS,) * FILES and len({r.key for r in snap.objects}) == FILES
    ws = opened(host, root)
    try:
        frame = ws.read_snapshot(snap)
        paths = [ws.storage.verified_path(ref) for ref in snap.objects]
    finally:
        ws.close()
    pd.testing.assert_frame_equal(frame, local_frame)
    assert frame["plan"].dtype == "category" and frame["amount"].isna().sum() > 0 and frame["note"].isna().any()
    assert sorted(frame["region"].unique()) == ["eu", "us"]
    for path in paths:  # the snapshot writer's settings: zstd
        meta = pq.read_metadata(path)
        assert {meta.row_group(g).column(c).compression for g in range(meta.num_row_groups)
                for c in range(meta.num_columns)} == {"ZSTD"}
    # the card: the same statistics (a mean summed in another order may differ in the last digits)
    assert snap.card.time_range == local.card.time_range
    for mine, theirs in zip(snap.card.columns, local.card.columns, strict=True):
        assert attrs.evolve(mine, mean=None) == attrs.evolve(theirs, mean=None)
        assert mine.mean == (None if theirs.mean is None else pytest.approx(theirs.mean, rel=1e-9))
    assert temp_files(root) == []


def test_an_identical_snapshot_already_stored_leaves_no_new_objects(cluster, data, tmp_path, host):
    root = tmp_path / ".tether"
    _, first = run(chain_of(root, data, None), host)
    before = object_keys(root)
    assert len(before) == 1
    record, outputs = run(chain_of(root, data, dask(cluster)), host)
    assert record.status == "succeeded", record.error
    assert outputs["events"].id == first["events"].id
    assert object_keys(root) == before  # the parts the workers wrote were removed, not committed
    assert temp_files(root) == []


def test_a_worker_killed_mid_write_is_an_engine_error_that_leaves_nothing(cluster, data, tmp_path, host):
    from distributed import Client
    from tether.errors import EngineError

    root = tmp_path / ".tether"
    client = Client(cluster, set_as_default=False)
    plugin = kill_on_partition(2, operation="write_parts")
    client.register_plugin(plugin, name=plugin.name)
    try:
        with pytest.raises(EngineError, match="a worker died while running 'write_parts'"):
            run(chain_of(root, data, dask(cluster)), host)
    finally:
        client.unregister_worker_plugin(plugin.name)
        client.close()
    ws = opened(host, root)
    try:
        assert ws.store.find("snapshot") == []
        assert ws.store.find("run")[0].status == "failed"
    finally:
        ws.close()
    assert temp_files(root) == [] and object_keys(root) == set()


def test_a_data_error_on_a_worker_passes_through_and_leaves_nothing(cluster, tmp_path, host):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tether.errors import DataError

    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, values in enumerate(([1, 2, 3], [4, 5, 6], ["seven", "eight", "nine"])):
        pq.write_table(pa.table({"id": values, "x": [0.5, 1.5, 2.5]}), folder / f"part-{i}.parquet")
    messages = {}
    for name, engine in (("local", None), ("dask", dask(cluster))):
        root = tmp_path / name / ".tether"
        with pytest.raises(DataError) as raised:
            run(chain_of(root, folder, engine), host)
        messages[name] = str(raised.value)
        assert temp_files(root) == [] and object_keys(root) == set()
        ws = opened(host, root)
        try:
            assert ws.store.find("snapshot") == []
        finally:
            ws.close()
    assert "part-2.parquet': column 'id' has type string, other files have int64" in messages["dask"]
    assert messages["dask"] == messages["local"]


class ElsewhereStorage:
    """The workspace's local storage seen as a storage tether cannot hand to the workers
    (as a remote one): every call goes to it, but it is not a ``LocalStorage``."""

    name = "elsewhere"

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, attribute):
        return getattr(self.inner, attribute)

    def describe(self) -> str:
        return "elsewhere:" + self.inner.describe()


def test_a_storage_the_workers_cannot_write_keeps_the_client_writing(cluster, data, local_snapshot, tmp_path,
                                                                     host):
    from structlog.testing import capture_logs
    from tether.config import build_chain
    from tether.runner import run_chain
    from tether.workspace import Workspace

    local, _ = local_snapshot
    chain = build_chain(chain_of(tmp_path / ".tether", data, dask(cluster), time_column="seen", key=["id"]), host)
    plain = opened(host, tmp_path / ".tether")
    ws = Workspace(plain.root, ElsewhereStorage(plain.storage), plain.store)
    try:
        with capture_logs() as logs:
            record, outputs = run_chain(chain, host, workspace=ws)
    finally:
        plain.close()
    assert record.status == "succeeded", record.error
    assert outputs["events"].id == local.id
    assert len(outputs["events"].objects) == 1  # written by this process, as before
    lines = [e for e in logs if e["event"] == "stage runs locally"]
    assert [(e["stage"], e["engine"]) for e in lines] == [("events", "dask")]
    assert "does not run 'write_parts' on storage elsewhere:local:" in lines[0]["reason"]
    assert temp_files(tmp_path / ".tether") == []


def test_gc_running_beside_a_worker_written_snapshot_loses_nothing(cluster, data, local_snapshot, tmp_path,
                                                                   tether_cli):
    from distributed import Client

    local, local_frame = local_snapshot
    root = tmp_path / ".tether"
    go = tmp_path / "go"
    chain = tmp_path / "chain.yaml"
    chain.write_text(json.dumps(chain_of(root, data, dask(cluster), time_column="seen", key=["id"])))
    client = Client(cluster, set_as_default=False)
    plugin = hold_partition(FILES - 1, go)
    client.register_plugin(plugin, name=plugin.name)
    writer = subprocess.Popen([sys.executable, "-m", "tether", "run", str(chain), "--json"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        written = wait_for_written_parts(root, writer, count=FILES - 1)
        stray = root / "objects" / ".tmp" / "abandoned.parquet"  # a killed writer's leftover: gc's to take
        stray.write_bytes(b"x")
        gc = tether_cli("verify", "--gc", "--grace", "0", "--json", "-w", str(root))
        assert gc.exit_code == 0, gc
        report = json.loads(gc.stdout)
        assert set(written) <= {t["name"] for t in report["temp"]}  # gc saw the parts...
        assert report["removed"] == [".tmp/abandoned.parquet"]  # ...and took only the leftover
    finally:
        go.touch()
        out, err = writer.communicate(timeout=300)
        client.unregister_worker_plugin(plugin.name)
        client.close()
    assert writer.returncode == 0, err
    snap = json.loads(out)["outputs"]["events"]["data"]
    assert snap["id"] == local.id
    verify = tether_cli("verify", "--json", "-w", str(root))
    assert verify.exit_code == 0 and json.loads(verify.stdout)["ok"], verify
    from tether.manager import PluginHost

    host = PluginHost(entry_points=False)
    ws = opened(host, root)
    try:
        import pandas as pd

        pd.testing.assert_frame_equal(ws.read_snapshot(ws.store.get(local.id, kind="snapshot")), local_frame)
    finally:
        ws.close()
    assert temp_files(root) == []


def hold_partition(index: int, go: Path):
    """A worker plugin that holds the write of partition ``index`` until the file ``go``
    exists: the other parts stay written, uncommitted, in the storage's temp folder."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class HoldPartition(WorkerPlugin):
        name = "tether-test-hold"

        def transition(self, key, start, finish, **kwargs) -> None:
            if finish == "executing" and str(key).startswith(f"tether-write_parts-{index:05d}-"):
                deadline = time.time() + 120
                while not go.exists() and time.time() < deadline:
                    time.sleep(0.05)

    return HoldPartition()


def wait_for_written_parts(root: Path, writer: subprocess.Popen, *, count: int) -> list[str]:
    """The names of ``count`` Parquet parts the workers finished in the temp folder."""
    import pyarrow.parquet as pq

    tmp = root / "objects" / ".tmp"
    deadline = time.time() + 120
    while time.time() < deadline:
        assert writer.poll() is None, writer.communicate()
        done = []
        for path in tmp.glob("*.parquet") if tmp.is_dir() else ():
            try:
                pq.read_metadata(path)
            except Exception:  # noqa: BLE001 - empty or still being written
                continue
            done.append(path.name)
        if len(done) >= count:
            return done
        time.sleep(0.1)
    raise AssertionError(f"the workers wrote no {count} parts in time: {temp_files(root)}")
