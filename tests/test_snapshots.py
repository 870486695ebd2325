"""Snapshots: fingerprint, storage, versions, card, sources, CLI, diff, verify, bad input."""

from __future__ import annotations

import json
import os
import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chains import customers_split_by_time
from tether.errors import ConfigError, DataError, IntegrityError, StoreError
from tether.plugins.snapshots.create import create_snapshot, take_snapshot
from tether.plugins.snapshots.fingerprint import fingerprint_table
from tether.plugins.snapshots.verify import verify_workspace


def make_frame(n: int = 2_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "id": np.arange(n, dtype="int64"),
        "amount": rng.normal(100, 15, n).round(2),
        "segment": rng.choice(["retail", "smb", "enterprise"], n),
        "active": rng.random(n) < 0.7,
        "ts": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="h"),
    })
    frame.loc[frame.index % 17 == 0, "amount"] = np.nan
    frame.loc[frame.index % 23 == 0, "segment"] = None
    return frame


def objects_on_disk(ws) -> list[str]:
    return sorted(ws.storage.iter_keys())


def temp_files(ws) -> list[str]:
    return [name for name, _ in ws.storage.iter_temp()]


# --- fingerprint -------------------------------------------------------------------------


def test_fingerprint_is_independent_of_chunking_and_encoding():
    table = pa.Table.from_pandas(make_frame(), preserve_index=False)
    base = fingerprint_table(table)
    rechunked = pa.concat_tables([table.slice(0, 1), table.slice(1, 700), table.slice(701)])
    assert rechunked.column(0).num_chunks == 3
    assert fingerprint_table(rechunked) == base
    assert fingerprint_table(table.combine_chunks(), threads=1) == base
    # offset widths and dictionary encoding are encodings, not data
    as_small = table.cast(pa.schema([f.with_type(pa.string()) if f.name == "segment" else f for f in table.schema]))
    assert fingerprint_table(as_small) == base
    dict_seg = table.set_column(2, "segment", pa.compute.dictionary_encode(table["segment"]))
    assert fingerprint_table(dict_seg) == base
    # schema metadata (pandas' index info etc.) is not data
    assert fingerprint_table(table.replace_schema_metadata({})) == base


def test_fingerprint_ignores_garbage_behind_nulls():
    values = np.array([1, 999, 3], dtype="int64")
    validity = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())
    garbage = pa.Array.from_buffers(pa.int64(), 3, [validity, pa.py_buffer(values.tobytes())])
    clean = pa.array([1, None, 3], type=pa.int64())
    assert garbage.to_pylist() == clean.to_pylist()

    def fp(arr):
        return fingerprint_table(pa.table({"x": arr}))

    assert fp(garbage) == fp(clean)


@pytest.mark.parametrize("change", ["value", "null", "rename", "order", "type", "row"])
def test_fingerprint_changes_with_the_data(change):
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    changed = {
        "value": pa.table({"a": [1, 2, 4], "b": ["x", "y", "z"]}),
        "null": pa.table({"a": [1, None, 3], "b": ["x", "y", "z"]}),
        "rename": pa.table({"A": [1, 2, 3], "b": ["x", "y", "z"]}),
        "order": pa.table({"a": [2, 1, 3], "b": ["y", "x", "z"]}),
        "type": pa.table({"a": pa.array([1, 2, 3], pa.int32()), "b": ["x", "y", "z"]}),
        "row": pa.table({"a": [1, 2, 3, 4], "b": ["x", "y", "z", ""]}),
    }[change]
    assert fingerprint_table(changed) != fingerprint_table(table)


def test_fingerprint_separates_string_boundaries_and_nested_values():
    assert fingerprint_table(pa.table({"s": ["ab", "c"]})) != fingerprint_table(pa.table({"s": ["a", "bc"]}))
    assert fingerprint_table(pa.table({"s": ["", None]})) != fingerprint_table(pa.table({"s": [None, ""]}))
    lists = pa.table({"l": [[1, 2], None, [3]], "st": [{"k": 1}, {"k": None}, None]})
    assert fingerprint_table(lists) == fingerprint_table(pa.concat_tables([lists.slice(0, 2), lists.slice(2)]))
    assert fingerprint_table(lists) != fingerprint_table(pa.table({"l": [[1], [2], [3]], "st": lists["st"]}))


def test_same_data_from_differently_encoded_parquet_files_gets_the_same_snapshot(tmp_path, workspace):
    table = pa.Table.from_pandas(make_frame(5_000), preserve_index=False)
    pq.write_table(table, tmp_path / "zstd.parquet", compression="zstd", row_group_size=1_000)
    pq.write_table(table, tmp_path / "plain.parquet", compression="none", use_dictionary=False)
    one = take_snapshot(tmp_path / "zstd.parquet", name="d", source="a", workspace=workspace)
    two = take_snapshot(tmp_path / "plain.parquet", name="d", source="b", workspace=workspace)
    assert one.id == two.id and one.fingerprint == fingerprint_table(table)
    assert len(workspace.store.find("snapshot")) == 1


# --- create, versions, read back -----------------------------------------------------------


def test_create_snapshot_stores_data_and_reads_back_exactly(workspace):
    frame = make_frame()
    snap = create_snapshot(frame, name="customers", workspace=workspace, time_column="ts", key=["id"])
    assert snap.id.startswith("snap-") and snap.version == 1 and snap.num_rows == len(frame)
    assert workspace.store.get(snap.id).fingerprint == snap.fingerprint
    back = workspace.read_snapshot(snap)
    pd.testing.assert_frame_equal(back, frame)
    assert list(workspace.read_snapshot(snap, columns=["id", "segment"]).columns) == ["id", "segment"]
    assert snap.size_bytes == sum(r.size for r in snap.objects) > 0


def test_identical_data_is_stored_once_and_versions_only_for_new_content(workspace):
    frame = make_frame()
    v1 = create_snapshot(frame, name="customers", workspace=workspace)
    stored = objects_on_disk(workspace)
    again = create_snapshot(frame.copy(), name="customers", workspace=workspace)
    assert again.id == v1.id and again.version == 1
    other_name = create_snapshot(frame, name="clients", workspace=workspace)
    assert other_name.id == v1.id and other_name.name == "customers"
    assert objects_on_disk(workspace) == stored and temp_files(workspace) == []
    v2 = create_snapshot(frame.iloc[:-1], name="customers", workspace=workspace)
    assert v2.version == 2 and v2.id != v1.id
    found = sorted(workspace.store.find("snapshot", name="customers"), key=lambda r: r.version)
    assert [r.version for r in found] == [1, 2]
    assert workspace.resolve("customers", kind="snapshot").id == v2.id
    assert workspace.resolve("customers@1", kind="snapshot").id == v1.id
    assert workspace.resolve(v1.id[:12], kind="snapshot").id == v1.id


def test_large_input_is_split_into_parts_and_reassembled_in_order(workspace, monkeypatch):
    from tether.plugins.snapshots import conform, writer

    monkeypatch.setattr(writer, "PART_BYTES", 200_000)
    monkeypatch.setattr(conform, "PIECE_ROWS", 5_000)
    frame = make_frame(40_000)
    snap = create_snapshot(frame, name="big", workspace=workspace)
    assert len(snap.objects) > 3 and sum(snap.object_rows) == len(frame)
    assert snap.fingerprint == fingerprint_table(frame)
    pd.testing.assert_frame_equal(workspace.read_snapshot(snap), frame)


# --- the dataset card ---------------------------------------------------------------------------


def test_card_has_declared_and_computed_fields(workspace):
    frame = make_frame(1_000)
    snap = create_snapshot(frame, name="customers", workspace=workspace, time_column="ts", key=["id"], card={
        "owner": "growth-data", "description": "active customers", "version": "2025-Q1",
        "source_systems": ["crm", "billing"], "selection": "accounts open in 2025",
        "filters": ["country = 'DE'"], "exclusions": ["test accounts"], "label_definition": "churned within 30d",
        "preprocessing": ["dedup by id"], "limitations": ["no B2B"], "synthetic": True,
    })
    card = snap.card
    assert card.owner == "growth-data" and card.source_systems == ("crm", "billing") and card.synthetic is True
    assert card.num_rows == 1_000 and card.num_columns == 5 and card.key_columns == ("id",)
    assert card.time_range[0] == frame["ts"].min().to_pydatetime()
    assert card.time_range[1] == frame["ts"].max().to_pydatetime()
    by_name = {c.name: c for c in card.columns}
    amount, segment = by_name["amount"], by_name["segment"]
    assert amount.missing_share == pytest.approx(frame["amount"].isna().mean(), abs=1e-6)
    assert amount.min == frame["amount"].min() and amount.max == frame["amount"].max()
    assert amount.mean == pytest.approx(frame["amount"].mean())
    counts = frame["segment"].value_counts()
    assert segment.top[0] == (counts.index[0], int(counts.iloc[0])) and segment.distinct == 3
    assert by_name["active"].top and by_name["active"].distinct == 2
    assert all(c.fingerprint.startswith("xxh3_128:") for c in card.columns)


def test_unknown_or_mistyped_card_field_is_a_config_error(workspace):
    with pytest.raises(ConfigError, match="unknown card field 'ownr'; did you mean 'owner'"):
        create_snapshot(make_frame(10), name="x", workspace=workspace, card={"ownr": "me"})
    with pytest.raises(ConfigError, match="synthetic: expected true or false"):
        create_snapshot(make_frame(10), name="x", workspace=workspace, card={"synthetic": "yes"})
    with pytest.raises(ConfigError, match="num_rows"):
        create_snapshot(make_frame(10), name="x", workspace=workspace, card={"num_rows": 5})
    assert workspace.store.find("snapshot") == []


# --- sources in a chain --------------------------------------------------------------------


def run_chain_dict(raw, host, tmp_path):
    from tether.config import build_chain
    from tether.runner import run_chain

    chain = build_chain({"version": 1, "workspace": str(tmp_path / "ws"), **raw}, host, base_dir=tmp_path)
    return run_chain(chain, host)


def test_chain_stage_snapshots_csv_parquet_folder_and_sqlite(tmp_path, host):
    frame = make_frame(3_000)
    frame.to_csv(tmp_path / "data.csv", index=False)
    folder = tmp_path / "parts"
    for seg, group in frame.dropna(subset=["segment"]).groupby("segment"):
        (folder / f"segment={seg}").mkdir(parents=True)
        group.drop(columns=["segment"]).to_parquet(folder / f"segment={seg}" / "part-0.parquet", index=False)
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute("CREATE TABLE t (id INTEGER, name TEXT, score REAL)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)",
                         [(i, f"n{i}", i / 3 if i % 5 else None) for i in range(1_000)])
    run, outputs = run_chain_dict({"stages": [
        {"stage": "snapshot", "id": "csv", "plugin": "csv",
         "params": {"path": "data.csv", "dataset": "c", "time_column": "ts", "key": ["id"],
                    "card": {"owner": "me", "limitations": ["sample"]}}},
        {"stage": "snapshot", "id": "pq", "plugin": "parquet", "params": {"path": "parts", "dataset": "p"}},
        {"stage": "snapshot", "id": "sql", "plugin": "sql",
         "params": {"url": "db.sqlite", "query": "SELECT * FROM t WHERE id >= 10 ORDER BY id", "dataset": "s"}},
    ]}, host, tmp_path)
    assert run.status == "succeeded"
    csv, parts, sql = outputs["csv"], outputs["pq"], outputs["sql"]
    assert csv.num_rows == 3_000 and csv.card.owner == "me" and csv.card.limitations == ("sample",)
    assert csv.card.time_range is not None and csv.source == "csv:data.csv"
    assert parts.num_rows == frame["segment"].notna().sum() and "segment" in parts.column_names
    assert sql.num_rows == 990 and [c.type for c in sql.columns] == ["int64", "string", "double"]
    assert {c.name: c for c in sql.card.columns}["score"].null_count == sum(1 for i in range(10, 1000) if i % 5 == 0)


def test_chain_rejects_unknown_card_field_before_running(tmp_path, host):
    (tmp_path / "d.csv").write_text("a\n1\n")
    with pytest.raises(ConfigError, match=r"stages\[0\].params.*unknown card field 'lable_definition'"):
        run_chain_dict({"stages": [{"stage": "snapshot", "plugin": "csv",
                                    "params": {"path": "d.csv", "card": {"lable_definition": "x"}}}]}, host, tmp_path)


# --- bad input: clear errors, nothing half-written ------------------------------------------------


def assert_nothing_written(ws):
    assert ws.store.find("snapshot") == []
    assert objects_on_disk(ws) == []
    assert temp_files(ws) == []


@pytest.mark.parametrize("case", ["empty", "header_only", "duplicate_columns", "mixed_late_block",
                                  "garbage_parquet", "directory_as_csv", "missing"])
def test_bad_files_fail_clearly_and_write_nothing(tmp_path, workspace, case):
    path = tmp_path / "in.csv"
    if case == "empty":
        path.write_text("")
        expected = "is empty"
    elif case == "header_only":
        path.write_text("a,b,c\n")
        expected = "has no rows"
    elif case == "duplicate_columns":
        path.write_text("a,b,a\n1,2,3\n")
        expected = "duplicate column names: 'a'"
    elif case == "mixed_late_block":
        path.write_text("n,x\n" + "".join(f"{i},{i}\n" for i in range(50_000)) + "oops,1\n")
        expected = "column of mixed types"
    elif case == "garbage_parquet":
        path = tmp_path / "in.parquet"
        path.write_bytes(b"PAR1 this is not parquet at all")
        expected = "cannot be read as Parquet"
    elif case == "directory_as_csv":
        path.mkdir()
        (path / "x").write_text("1")
        expected = "holds no Parquet files|cannot be read"
    else:
        path = tmp_path / "nope.csv"
        expected = "not found"
    from tether.plugins.snapshots import conform

    original = conform.read_csv_batches

    def small_blocks(p, **kw):  # make the conflicting value land in a later block
        return original(p, delimiter=",", block_size=1 << 16)

    conform.read_csv_batches = small_blocks
    try:
        with pytest.raises(DataError, match=expected):
            take_snapshot(path, name="bad", source="test", workspace=workspace)
    finally:
        conform.read_csv_batches = original
    assert_nothing_written(workspace)


def test_bad_frames_fail_clearly(workspace):
    mixed = pd.DataFrame({"x": [1, "two", 3.0]})
    with pytest.raises(DataError, match="column x cannot be stored"):
        create_snapshot(mixed, name="m", workspace=workspace)
    dupes = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match="duplicate column names: 'a'"):
        create_snapshot(dupes, name="d", workspace=workspace)
    with pytest.raises(DataError, match="has no rows"):
        create_snapshot(pd.DataFrame({"a": pd.Series([], dtype="int64")}), name="e", workspace=workspace)
    with pytest.raises(DataError, match="time column 'when' is not a column"):
        create_snapshot(make_frame(10), name="t", workspace=workspace, time_column="when")
    with pytest.raises(DataError, match="time column 'segment' has type"):
        create_snapshot(make_frame(10), name="t", workspace=workspace, time_column="segment")
    with pytest.raises(DataError, match="key column 'ident' is not a column"):
        create_snapshot(make_frame(10), name="t", workspace=workspace, key=["ident"])
    assert_nothing_written(workspace)


def test_failing_sql_and_mixed_sql_types_are_clear(tmp_path, workspace, context):
    from tether.plugins.snapshots.sources import SqlSource

    db = tmp_path / "db.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v)")
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), ("three",)])
    bad_query = SqlSource(url=str(db), query="SELECT nope FROM t")
    with pytest.raises(DataError, match="query failed on 'db.sqlite': no such column: nope"):
        take_snapshot(bad_query.read(context=context), name="q", source=bad_query.describe(), workspace=workspace)
    mixed = SqlSource(url=str(db), query="SELECT v FROM t", batch_rows=2)
    with pytest.raises(DataError, match="column 'v' has values of mixed types"):
        take_snapshot(mixed.read(context=context), name="q", source=mixed.describe(), workspace=workspace)
    assert_nothing_written(workspace)


def test_sqlite_source_is_read_only_and_runs_one_statement(tmp_path, context):
    from tether.plugins.snapshots.sources import SqlSource

    db = tmp_path / "db.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v)")
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    for query in ("DELETE FROM t RETURNING v", "SELECT v FROM t; DELETE FROM t"):
        with pytest.raises(DataError, match="sql source: query failed on 'db.sqlite'"):
            list(SqlSource(url=f"sqlite:///{db}", query=query).read(context=context))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


def pg_url() -> str:
    from conftest import require_server

    require_server("PostgreSQL", "127.0.0.1", 5432)
    psycopg = pytest.importorskip("psycopg")
    for user in ("postgres", "root"):
        candidate = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            psycopg.connect(candidate, connect_timeout=5).close()
            return candidate
        except psycopg.Error:
            continue
    pytest.fail("PostgreSQL is up but neither user postgres nor root can connect to database test")


@pytest.mark.postgres
def test_postgres_source_runs_its_query_read_only(tmp_path):
    import psycopg
    from tether.plugins.snapshots.sources import SqlSource

    url = pg_url()
    table, func = f"tether_ro_{os.getpid()}", f"tether_ro_wipe_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id int)")
        conn.execute(f"INSERT INTO {table} SELECT generate_series(1, 10)")
        conn.execute(f"CREATE OR REPLACE FUNCTION {func}() RETURNS int LANGUAGE plpgsql AS "
                     f"$$ BEGIN DELETE FROM {table}; RETURN 1; END $$")
    try:
        for query in (f"SELECT {func}()", f"SELECT 1; DELETE FROM {table}", f"DELETE FROM {table} RETURNING id"):
            with pytest.raises(DataError, match="sql source: query failed on PostgreSQL"):
                list(SqlSource(url=url, query=query).read(context=None))
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (10,)
        rows = list(SqlSource(url=url, query=f"SELECT id FROM {table} ORDER BY id").read(context=None))
        assert sum(b.num_rows for b in rows) == 10
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP FUNCTION IF EXISTS {func}()")
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_unwritable_storage_root_fails_before_reading(tmp_path, host):
    from tether.config import BackendConfig
    from tether.workspace import Workspace

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the storage folder should be")
    ws = Workspace.open(host, tmp_path / "ws", storage=BackendConfig(plugin="local",
                                                                     params={"root": str(blocker / "objects")}))
    with pytest.raises(StoreError, match="storage root .*not-a-dir/objects' is not writable"):
        create_snapshot(make_frame(10), name="x", workspace=ws)
    assert ws.store.find("snapshot") == []
    ws.close()


# --- tampering and verify -----------------------------------------------------------------------


def test_tampered_object_fails_loading_and_verify_names_it(workspace):
    snap = create_snapshot(make_frame(), name="t", workspace=workspace)
    assert verify_workspace(workspace)["ok"]
    key = snap.objects[0].key
    path = workspace.storage.path / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"object '{key}'"):
        workspace.read_snapshot(snap)
    report = verify_workspace(workspace)
    assert not report["ok"] and [c["key"] for c in report["changed"]] == [key]
    assert report["changed"][0]["records"] == [snap.id]
    path.unlink()
    report = verify_workspace(workspace)
    assert [m["key"] for m in report["missing"]] == [key]
    with pytest.raises(IntegrityError, match=f"object '{key}' is missing"):
        workspace.read_snapshot(snap)


def test_verify_deep_recomputes_the_data_fingerprint(workspace):
    import attrs

    snap = create_snapshot(make_frame(), name="t", workspace=workspace)
    other = create_snapshot(make_frame(seed=1), name="u", workspace=workspace)
    assert verify_workspace(workspace, deep=True)["ok"]
    # a record pointing at other intact objects than its fingerprint describes is caught only by --deep
    workspace.store.put(attrs.evolve(snap, objects=other.objects, object_rows=other.object_rows), replace=True)
    assert verify_workspace(workspace)["ok"]
    report = verify_workspace(workspace, deep=True)
    assert not report["ok"] and report["fingerprint_mismatch"][0]["snapshot"] == snap.id
    assert report["fingerprint_mismatch"][0]["actual"] == other.fingerprint
    # a fingerprint that is not the one the id was derived from: the record was altered
    workspace.store.put(attrs.evolve(snap, fingerprint="xxh3_128:" + "0" * 32), replace=True)
    report = verify_workspace(workspace)
    assert not report["ok"] and report["altered"] == [{"record": snap.id, "kind": "snapshot",
                                                       "expected": "snap-" + "0" * 24}]


CHAIN = """\
version: 1
name: mini
stages:
""" + customers_split_by_time(2000) + """\
  - stage: featurize
    params: {label: churned, numeric: [tenure_months, monthly_charges], categorical: [contract]}
  - {step: "churn.train:fit"}
"""


def _repoint(db, record_id: str, field: str, ref) -> None:
    """Rewrite one artifact reference inside a stored record, as a store writer could."""
    from tether import serde

    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT body FROM records WHERE id = ?", (record_id,)).fetchone()
        envelope = json.loads(body)
        envelope["data"][field] = serde.converter.unstructure(ref)
        conn.execute("UPDATE records SET body = ? WHERE id = ?", (json.dumps(envelope), record_id))


@pytest.mark.slow
def test_verify_reports_model_and_feature_records_whose_ids_do_not_match_their_artifacts(tmp_path, host,
                                                                                      tether_cli):
    import shutil
    from pathlib import Path

    from tether.config import load_chain
    from tether.runner import run_chain
    from tether.workspace import Workspace

    shutil.copytree(Path(__file__).resolve().parents[1] / "examples" / "churn" / "churn", tmp_path / "churn")
    (tmp_path / "chain.yaml").write_text(CHAIN)
    chain = load_chain(tmp_path / "chain.yaml", host)
    _, outputs = run_chain(chain, host)
    model, features = outputs["fit"], outputs["featurize"]
    ws = Workspace.for_chain(chain, host)
    assert verify_workspace(ws)["ok"]
    other = ws.storage.put_bytes(b"other bytes, intact in storage", suffix=".pkl")
    db = tmp_path / ".tether" / "tether.db"
    _repoint(db, model.id, "artifact", other)
    _repoint(db, features.id, "transform", other)
    report = verify_workspace(ws)
    assert not report["ok"] and report["changed"] == [] and report["missing"] == []
    assert sorted((a["record"], a["kind"]) for a in report["altered"]) == sorted(
        [(model.id, "model"), (features.id, "features")])
    cli = tether_cli("verify", "-w", tmp_path / ".tether")
    assert cli.exit_code != 0 and "Traceback" not in cli.stderr
    assert f"ALTERED  record {model.id} (model)" in cli.stdout and "record altered" in cli.stdout
    assert len(cli.stderr.strip().splitlines()) == 1 and cli.stderr.startswith("tether: error: verify failed")
    ws.close()


# --- CLI -----------------------------------------------------------------------------------


def test_cli_create_ls_show_get_diff(tmp_path, tether_cli):
    frame = make_frame(500)
    frame["segment"] = frame["segment"].fillna("unknown")  # CSV reads an empty field as "", not null
    frame.to_csv(tmp_path / "v1.csv", index=False)
    changed = frame.iloc[3:].copy()
    changed.loc[changed.index[:4], "amount"] = -1.0
    changed["extra"] = 1
    changed.to_parquet(tmp_path / "v2.parquet", index=False)
    (tmp_path / "card.yaml").write_text("owner: analytics\nlimitations: [only 2025]\nsynthetic: true\n")

    first = tether_cli("snapshots", "create", "v1.csv", "--name", "cust", "--time-column", "ts", "--key", "id",
                       "--card", "card.yaml")
    assert first.exit_code == 0, first
    snap_id = first.stdout.strip()
    assert snap_id.startswith("snap-") and "\n" not in snap_id
    second = tether_cli("snapshots", "create", "v2.parquet", "--name", "cust", "--key", "id", "--json")
    assert second.exit_code == 0, second
    record = json.loads(second.stdout)
    assert record["kind"] == "snapshot" and record["data"]["version"] == 2
    again = tether_cli("snapshots", "create", "v1.csv", "--name", "cust")
    assert again.stdout.strip() == snap_id

    listing = tether_cli("snapshots", "ls", "cust")
    assert listing.exit_code == 0 and "cust@1" in listing.stdout and "cust@2" in listing.stdout
    assert len(listing.stdout.strip().splitlines()) == 2

    show = tether_cli("snapshots", "show", snap_id)
    assert show.exit_code == 0, show
    for text in ("owner          analytics", "only 2025", "synthetic      yes", "rows x cols    500 x 5",
                 "time range     2025-01-01 00:00:00", "segment", "missing"):
        assert text in show.stdout

    out = tether_cli("snapshots", "get", "cust@1", "-o", "back.parquet")
    assert out.exit_code == 0, out
    back = pd.read_parquet(tmp_path / "back.parquet")
    expected = pd.read_csv(tmp_path / "v1.csv")
    assert len(back) == 500 and back["id"].tolist() == expected["id"].tolist()
    assert back["amount"].equals(expected["amount"])
    csv_out = tether_cli("snapshots", "get", "cust@2", "-o", "back.csv")
    assert csv_out.exit_code == 0 and len(pd.read_csv(tmp_path / "back.csv")) == 497
    from tether.plugins.snapshots.fingerprint import fingerprint_table as fp

    assert fp(pq.read_table(tmp_path / "back.parquet")) == json.loads(
        tether_cli("snapshots", "show", snap_id, "--json").stdout)["data"]["fingerprint"]

    diff = tether_cli("snapshots", "diff", "cust@1", "cust@2", "--json")
    assert diff.exit_code == 0, diff
    report = json.loads(diff.stdout)
    assert report["schema"]["added"] == [{"column": "extra", "type": "int64"}]
    assert [r["column"] for r in report["schema"]["retyped"]] == ["ts"]  # CSV reads seconds, pandas writes us
    rows = report["rows"]
    assert (rows["added"], rows["removed"], rows["changed"]) == (0, 3, 4)
    assert rows["changed_by_column"] == {"amount": 4}
    assert [s["id"] for s in rows["samples"]["removed"]] == [0, 1, 2]
    assert any(s["column"] == "amount" and "min" in s for s in report["statistics"])
    human = tether_cli("snapshots", "diff", "cust@1", "cust@2")
    assert "3 removed, 4 changed" in human.stdout and "schema: + extra (int64)" in human.stdout
    stats = [line for line in human.stdout.splitlines() if line.startswith("stats: ")]
    assert stats and not any(token in line for line in stats for token in ("None", "[[", "[]", "'"))

    verify = tether_cli("verify")
    assert verify.exit_code == 0 and "verify ok" in verify.stdout


def test_cli_errors_are_one_line(tmp_path, tether_cli):
    (tmp_path / "empty.csv").write_text("")
    cases = [
        (("snapshots", "create", "missing.csv", "--name", "x"), 2, "source 'missing.csv' not found"),
        (("snapshots", "create", "empty.csv", "--name", "x"), 2, "is empty"),
        (("snapshots", "show", "nothing"), 2, "no snapshot 'nothing'"),
        (("snapshots", "create", "sqlite:///db.sqlite", "--name", "x"), 2, "--query"),
    ]
    for args, code, text in cases:
        result = tether_cli(*args)
        assert result.exit_code == code, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tether: error: ") and text in lines[0], result


def test_cli_option_errors_are_one_line(tmp_path, tether_cli):
    make_frame(50).to_csv(tmp_path / "d.csv", index=False)
    created = tether_cli("snapshots", "create", "d.csv", "--name", "d")
    assert created.exit_code == 0, created
    cases = [
        (("snapshots", "create", "d.csv", "--name", "x", "--query", "SELECT 1"), "--query"),
        (("snapshots", "create", "d.csv", "--name", "x", "--time-column", "tss"), "time column 'tss' is not a column"),
        (("snapshots", "diff", "d", "d", "--samples", "-5"), "--samples"),
    ]
    for args, text in cases:
        result = tether_cli(*args)
        assert result.exit_code == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0] and "Traceback" not in result.stderr, result
    listed = json.loads(tether_cli("snapshots", "ls", "--json").stdout)
    assert [s["data"]["id"] for s in listed] == [created.stdout.strip()]
    assert tether_cli("snapshots", "diff", "d", "d", "--samples", "0").exit_code == 0  # counts only


def test_missing_text_and_numbers_snapshot_alike_from_csv_and_parquet(tmp_path, workspace):
    frame = pd.DataFrame({"name": ["a", None, "c", "", "e"], "n": [1.5, None, 3.0, 4.0, None],
                          "k": [1, 2, 3, 4, 5]})
    frame.loc[3, "name"] = None  # pandas writes both None and "" as an empty CSV field
    frame.to_csv(tmp_path / "f.csv", index=False)
    frame.to_parquet(tmp_path / "f.parquet", index=False)
    from_csv = create_snapshot(tmp_path / "f.csv", name="f", workspace=workspace)
    from_parquet = create_snapshot(tmp_path / "f.parquet", name="f", workspace=workspace)
    assert from_csv.id == from_parquet.id
    stats = {c.name: c for c in from_csv.card.columns}
    assert stats["name"].null_count == 2 and stats["n"].null_count == 2


@pytest.mark.parametrize("first_aware", [True, False])
def test_parquet_folder_mixing_naive_and_zoned_timestamps_is_an_error(tmp_path, workspace, first_aware):
    naive = pa.table({"ts": pa.array([1_700_000_000_000_000], pa.timestamp("us")), "v": [1]})
    aware = pa.table({"ts": pa.array([1_700_000_000_000_000], pa.timestamp("us", tz="Europe/Paris")), "v": [2]})
    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(aware if first_aware else naive, folder / "a.parquet")
    pq.write_table(naive if first_aware else aware, folder / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet'?: column 'ts' has .*time zone.*a\.parquet"):
        create_snapshot(folder, name="m", workspace=workspace)
    assert_nothing_written(workspace)
    # zone-aware files in different zones hold the same instants: converted, nothing lost
    utc = pa.table({"ts": pa.array([1_700_000_000_000_000], pa.timestamp("us", tz="UTC")), "v": [3]})
    pq.write_table(utc, folder / ("b.parquet" if first_aware else "a.parquet"))
    snap = create_snapshot(folder, name="m", workspace=workspace)
    assert snap.num_rows == 2


def test_empty_csv_delimiter_is_a_config_error_at_validation(tmp_path, host):
    (tmp_path / "d.csv").write_text("a\n1\n")
    with pytest.raises(ConfigError, match=r"stages\[0\]\.params\.delimiter: must be one character, got ''"):
        run_chain_dict({"stages": [{"stage": "snapshot", "plugin": "csv",
                                    "params": {"path": "d.csv", "delimiter": ""}}]}, host, tmp_path)
    assert not (tmp_path / ".tether" / "tether.db").exists()


def test_cli_reports_tampering_with_the_object_name(tmp_path, tether_cli):
    make_frame(300).to_csv(tmp_path / "d.csv", index=False)
    snap_id = tether_cli("snapshots", "create", "d.csv", "--name", "d").stdout.strip()
    objects = [p for p in (tmp_path / ".tether" / "objects").rglob("*.parquet") if ".tmp" not in p.parts]
    assert len(objects) == 1
    target = objects[0]
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    key = target.relative_to(tmp_path / ".tether" / "objects").as_posix()
    got = tether_cli("snapshots", "get", snap_id, "-o", "out.parquet")
    assert got.exit_code == 1 and f"object '{key}'" in got.stderr and not (tmp_path / "out.parquet").exists()
    verify = tether_cli("verify")
    assert verify.exit_code == 1 and f"CHANGED  {key}" in verify.stdout and snap_id in verify.stdout


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_source_streams_a_query(tmp_path, host, monkeypatch):
    from conftest import require_server

    require_server("PostgreSQL", "127.0.0.1", 5432)
    psycopg = pytest.importorskip("psycopg")
    url = None
    for user in ("postgres", "root"):
        candidate = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            psycopg.connect(candidate, connect_timeout=5).close()
            url = candidate
            break
        except psycopg.Error:
            continue
    if url is None:
        pytest.fail("PostgreSQL is up but neither user postgres nor root can connect to database test")
    table = f"tether_snap_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id int, name text, amount numeric(10,2), at timestamptz, ok boolean)")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)",
                            [(i, f"n{i}", None if i % 7 == 0 else i * 1.25, f"2025-01-{1 + i % 28:02d}T00:00:00Z",
                              i % 2 == 0) for i in range(1_200)])
    try:
        monkeypatch.setenv("TETHER_TEST_PG", url)
        run, outputs = run_chain_dict({"stages": [{"stage": "snapshot", "plugin": "sql", "params": {
            "url": "${TETHER_TEST_PG}", "query": f"SELECT * FROM {table} ORDER BY id", "dataset": "pg",
            "time_column": "at", "key": ["id"], "batch_rows": 500}}]}, host, tmp_path)
        snap = outputs["snapshot"]
        assert snap.num_rows == 1_200 and snap.source == "sql:postgresql://127.0.0.1:5432/test"
        assert "@" not in snap.source
        types = {c.name: c.type for c in snap.columns}
        assert types["id"] == "int32" and types["amount"] == "decimal128(10, 2)"
        assert types["at"].startswith("timestamp") and types["ok"] == "bool"
        amount = {c.name: c for c in snap.card.columns}["amount"]
        assert amount.null_count == len([i for i in range(1_200) if i % 7 == 0])
        assert snap.card.time_range[0].day == 1
        from tether.plugins.snapshots.sources import SqlSource

        failing = SqlSource(url=url, query="SELECT * FROM no_such_table_here")
        with pytest.raises(DataError, match="query failed on PostgreSQL: .*no_such_table_here"):
            list(failing.read(context=None))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_every_common_type_round_trips_to_the_recorded_fingerprint(workspace):
    import datetime as dt
    import decimal

    n = 50
    table = pa.table({
        "i8": pa.array(range(n), pa.int8()), "u32": pa.array(range(n), pa.uint32()),
        "f32": pa.array([i / 3 for i in range(n)], pa.float32()),
        "dec": pa.array([decimal.Decimal(i) / 4 for i in range(n)], pa.decimal128(10, 2)),
        "ts_s": pa.array([dt.datetime(2025, 1, 1) + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("s")),
        "ts_ns_tz": pa.array(list(range(n)), pa.timestamp("ns", tz="Europe/Berlin")),
        "d32": pa.array([dt.date(2025, 1, 1 + i % 28) for i in range(n)], pa.date32()),
        "d64": pa.array([dt.date(2025, 2, 1 + i % 28) for i in range(n)], pa.date64()),
        "t": pa.array([dt.time(i % 24, 0, 1) for i in range(n)], pa.time32("s")),
        "bin": pa.array([bytes([i]) * (i % 3) for i in range(n)], pa.large_binary()),
        "cat": pa.array(["a", "b"] * (n // 2)).dictionary_encode(),
        "lst": pa.array([[i, None] if i % 4 else None for i in range(n)], pa.list_(pa.int64())),
        "st": pa.array([{"x": i, "y": str(i)} for i in range(n)]),
        "b": pa.array([i % 3 == 0 if i % 5 else None for i in range(n)]),
    })
    snap = take_snapshot(table, name="types", source="test", workspace=workspace, time_column="ts_s")
    from tether.plugins.snapshots.verify import recompute_fingerprint

    assert recompute_fingerprint(workspace, snap) == snap.fingerprint == fingerprint_table(table)
    assert snap.card.time_range[0].year == 2025


def test_diff_compares_retyped_columns_by_value_and_rejects_duplicate_keys(workspace):
    from tether.plugins.snapshots.diff import diff_snapshots

    a = create_snapshot(pd.DataFrame({"id": [1, 2, 3], "x": [10, 20, 30]}), name="r", workspace=workspace, key=["id"])
    b = create_snapshot(pd.DataFrame({"id": [1, 2, 4], "x": ["10", "21", "40"]}), name="r", workspace=workspace)
    report = diff_snapshots(workspace, a, b)
    assert report["schema"]["retyped"] == [{"column": "x", "from": "int64", "to": "large_string"}]
    rows = report["rows"]
    assert (rows["added"], rows["removed"], rows["changed"]) == (1, 1, 1)
    assert rows["samples"]["changed"] == [{"id": 2}] and rows["changed_by_column"] == {"x": 1}
    dupes = create_snapshot(pd.DataFrame({"id": [1, 1], "x": [1, 2]}), name="r", workspace=workspace)
    with pytest.raises(DataError, match=r"key \(id\) is not unique in snapshot .*appears 2 times"):
        diff_snapshots(workspace, a, dupes)
    assert diff_snapshots(workspace, b, a)["rows"]["key"] == ["id"]  # b declares no key; a's is used
    assert "no key declared" in diff_snapshots(workspace, b, dupes)["rows"]["note"]


def test_diff_binds_part_paths_that_contain_both_quote_kinds(tmp_path, host):
    from tether.plugins.snapshots.diff import diff_snapshots
    from tether.plugins.snapshots.read import verified_part_paths
    from tether.workspace import Workspace

    root = tmp_path / "it's \"q\""
    with Workspace.open(host, root / ".tether") as ws:
        a = create_snapshot(pd.DataFrame({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]}), name="q", workspace=ws, key=["id"])
        b = create_snapshot(pd.DataFrame({"id": [2, 3, 4], "x": [2.0, 3.5, 4.0]}), name="q", workspace=ws, key=["id"])
        assert all("'" in str(p) and '"' in str(p) for p in verified_part_paths(ws, a) + verified_part_paths(ws, b))
        rows = diff_snapshots(ws, a, b)["rows"]
    assert (rows["added"], rows["removed"], rows["changed"]) == (1, 1, 1)
    assert rows["samples"] == {"added": [{"id": 4}], "removed": [{"id": 1}], "changed": [{"id": 3}]}


def test_fingerprint_property_any_chunking_and_any_batch_stream_agree():
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from tether.plugins.snapshots.fingerprint import Fingerprinter

    rows = st.lists(st.tuples(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)),
                              st.one_of(st.none(), st.text(max_size=5)),
                              st.one_of(st.none(), st.lists(st.integers(0, 9), max_size=3))),
                    min_size=1, max_size=40)

    @settings(max_examples=60, deadline=None)
    @given(rows, st.lists(st.integers(0, 40), max_size=5))
    def check(data, cuts):
        table = pa.table({"i": pa.array([r[0] for r in data], pa.int64()),
                          "s": pa.array([r[1] for r in data], pa.string()),
                          "l": pa.array([r[2] for r in data], pa.list_(pa.int64()))})
        bounds = sorted({0, len(data), *[c for c in cuts if c < len(data)]})
        pieces = [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]
        streamed = Fingerprinter(table.schema)
        for piece in pieces:
            for batch in piece.to_batches():
                streamed.update(batch)
        assert "xxh3_128:" + streamed.hexdigest() == fingerprint_table(table) \
            == fingerprint_table(pa.concat_tables(pieces))

    check()


def test_python_source_may_stream_batches_and_get_prints_csv(tmp_path, host, tether_cli):
    import sys

    (tmp_path / "streamsrc.py").write_text(
        "import pandas as pd\n"
        "def chunks(n=3):\n"
        "    for i in range(n):\n"
        "        yield pd.DataFrame({'k': range(i * 10, i * 10 + 10), 'v': [f'x{j}' for j in range(10)]})\n")
    sys.path.insert(0, str(tmp_path))
    try:
        run, outputs = run_chain_dict({"stages": [{"stage": "snapshot", "plugin": "python", "params": {
            "function": "streamsrc:chunks", "dataset": "streamed", "key": ["k"]}}]}, host, tmp_path)
    finally:
        sys.path.remove(str(tmp_path))
    snap = outputs["snapshot"]
    whole = pd.DataFrame({"k": range(30), "v": [f"x{j}" for j in range(10)] * 3})
    assert snap.num_rows == 30 and snap.fingerprint == fingerprint_table(whole)
    out = tether_cli("snapshots", "get", "streamed", "-w", str(tmp_path / "ws"))
    assert out.exit_code == 0, out
    lines = out.stdout.strip().splitlines()
    assert lines[0] == '"k","v"' and lines[1] == '0,"x0"' and len(lines) == 31
