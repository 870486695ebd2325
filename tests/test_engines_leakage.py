"""The partitioned leakage checks ``entity_overlap`` and ``near_duplicates``: on the local
engine and on a Dask ``LocalCluster`` (2 worker processes, 1 thread each, started once for
the module) they give exactly the local check's finding on the whole frame; and
``tether leakage --engine``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from engines_helpers import read_folder

pytest.importorskip("distributed")

TOL, COARSE = 1e-4, 4  # a tiny grid: many values near a cell edge, looked up in the neighbouring cell


def edge_value(k: int, *, tolerance: float, atol: float, coarse: int) -> float:
    """A positive value exactly on the ``k``-th cell edge of the near-duplicate grid."""
    from tether.plugins.leakage.near_join import GRID_OFFSET

    width = tolerance / (1 - tolerance) * 1.000001 * coarse
    return float(np.expm1(k * width - GRID_OFFSET) * atol / tolerance)


def write_leaky(folder: Path, *, rows: int = 400, seed: int = 3) -> dict:
    """Four Parquet files with near copies across files and splits: noisy numbers, re-cased
    and re-spaced text, NaNs on both sides, copies in ``excluded``, identical copies within
    one split, exact copies across splits, pairs straddling a cell edge; integers and
    booleans with missing values in one file only; entities shared across splits. Returns
    the row numbers of what was planted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    frames = [pd.DataFrame({
        "x": rng.lognormal(0, 2, rows) * rng.choice([-1, 1], rows),
        "y": rng.normal(0, 1e-3, rows),
        "n": pd.array(rng.integers(0, 50, rows), dtype="Int64"),
        "city": rng.choice(np.array(["Oslo", "Lima", "New York", None], dtype=object), rows),
        "flag": pd.array(rng.random(rows) < 0.5, dtype="boolean"),
        "ts": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 60, rows), unit="D"),
        "customer": [f"C{c:03d}" for c in rng.integers(0, 300, rows)],
        "store": pd.array(rng.integers(0, 80, rows), dtype="Int64"),
        "split": rng.choice(["train", "validation", "test", "excluded"], rows, p=[0.55, 0.2, 0.2, 0.05]),
    }) for _ in range(4)]
    frames[1].loc[3, "n"] = pd.NA  # an int column with nulls in one file only (floats in the whole frame)
    frames[1].loc[4, "flag"] = pd.NA  # a bool column with nulls in one file only (objects in the whole frame)
    frames[2].loc[5, "store"] = pd.NA
    frames[0].loc[:39, "split"] = np.resize(["train", "validation", "test"], 40)
    frames[0].loc[:3, "x"] = np.nan  # NaN on both sides of a pair
    copies = frames[0].iloc[:40].copy()
    copies["x"] = copies["x"] * (1 + 4e-7)
    copies["city"] = "  " + copies["city"].str.upper().str.replace(" ", "   ") + " "
    copies["split"] = np.where(copies["split"] == "train", "test", "train")
    copies.loc[copies.index[-4:], "split"] = "excluded"  # copies nobody may see
    same_split = pd.concat([copies.iloc[4:8]] * 3)  # identical copies within one split: weights 4
    exact = frames[1].iloc[10:15].assign(split=np.where(frames[1]["split"].iloc[10:15] == "test", "train", "test"))
    straddling = []
    for k, grid in ((4700, {"tolerance": 1e-6, "atol": 1e-6, "coarse": 1000}),
                    (2000, {"tolerance": TOL, "atol": 1e-6, "coarse": COARSE})):
        edge = edge_value(k, **grid)
        straddling.append(frames[0].iloc[[50, 50]].assign(
            x=[edge * (1 - 0.3 * grid["tolerance"]), edge * (1 + 0.3 * grid["tolerance"])], split=["train", "test"]))
    frames[0] = pd.concat([frames[0], straddling[0].iloc[:1], straddling[1].iloc[:1]], ignore_index=True)
    frames[2] = pd.concat([frames[2], copies, straddling[0].iloc[1:]], ignore_index=True)
    frames[3] = pd.concat([frames[3], same_split, exact, straddling[1].iloc[1:]], ignore_index=True)
    offsets = np.cumsum([0, *(len(f) for f in frames)])
    for i, frame in enumerate(frames):  # without pandas metadata (as other tools write): numpy dtypes when read
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        pq.write_table(table, folder / f"part-{i:03d}.parquet")
    copy0 = offsets[2] + rows  # the first copy, in file 2
    return {"folder": folder, "nan_pairs": [(i, copy0 + i) for i in range(4)],
            "excluded": set(range(copy0 + 36, copy0 + 40)),
            "exact": set(range(offsets[3] + rows + 12, offsets[3] + rows + 17)),
            "edge_pairs": [(rows, offsets[3] - 1), (rows + 1, offsets[4] - 1)]}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    return write_leaky(tmp_path_factory.mktemp("leaky") / "events")


@pytest.fixture(scope="module")
def leaky(planted) -> Path:
    return planted["folder"]


def whole_frame_input(folder: Path, **roles):
    from tether.plugins.leakage.input import LeakageInput

    frame = read_folder(folder)
    return LeakageInput(frame=frame.drop(columns="split"), splits=frame["split"].to_numpy(), **roles)


def assert_same(found: list, expected: list) -> None:
    """Equal findings, down to the JSON they serialize to (an int is not a float there)."""
    from tether import serde

    assert found == expected

    def text(findings):
        return json.dumps([serde.converter.unstructure(f) for f in findings], sort_keys=True, default=repr)

    assert text(found) == text(expected)


# --- entity_overlap ------------------------------------------------------------------------------


@pytest.mark.parametrize("column, sample", [("customer", 50), ("customer", 3), ("store", 7)])
def test_entity_overlap_matches_the_local_check(engine, leaky, column, sample):
    from tether.plugins.leakage.entities import EntityOverlap

    check = EntityOverlap(sample=sample)
    expected = check.check(whole_frame_input(leaky, entity_column=column))
    found = engine.entity_overlap(leaky, split_column="split", entity_column=column, sample=sample)
    assert_same(check.findings(found), expected)
    assert expected[0].evidence["n_entities"] > 50 and len(expected[0].evidence["rows"]) == sample
    if column == "store":  # integers with a null: the whole frame holds them as floats, so does the result
        assert all(isinstance(e, float) for e in expected[0].evidence["entities"])


def test_entity_overlap_counts_entities_per_split_and_finds_none_in_a_clean_split(engine, tmp_path):
    from tether.plugins.leakage.entities import EntityOverlap

    rng = np.random.default_rng(1)
    for i in range(3):
        ids = rng.integers(0, 100, 200)
        split = np.array(["train", "validation", "test", "excluded"])[ids % 4]  # one split per entity
        frame = pd.DataFrame({"id": ids, "v": rng.normal(size=200), "split": split})
        frame.to_parquet(tmp_path / f"{i}.parquet", index=False)
    found = engine.entity_overlap(tmp_path, split_column="split", entity_column="id")
    assert EntityOverlap().findings(found) == [] == EntityOverlap().check(whole_frame_input(tmp_path,
                                                                                          entity_column="id"))
    assert found.entities_by_split == {"train": 25, "validation": 25, "test": 25, "excluded": 25}


# --- near_duplicates -----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"tolerance": TOL, "coarse": COARSE}, {"atol": 0.0},
                                     {"tolerance": TOL, "coarse": COARSE, "max_expand": 0}],
                         ids=["defaults", "tiny-grid", "relative-only", "no-expansion"])
def test_near_duplicates_match_the_local_check(engine, leaky, planted, options):
    from tether.plugins.leakage.near_duplicates import NearDuplicates

    check = NearDuplicates(**options, sample=10**4)
    expected = check.check(whole_frame_input(leaky))
    found = engine.near_duplicates(leaky, split_column="split", **options)
    assert_same(check.findings(found), expected)
    evidence = expected[0].evidence
    assert evidence["text_columns"] == ["city", "flag", "ts", "customer"]
    assert evidence["numeric_columns"] == ["x", "y", "n", "store"] and evidence["truncated"] is False
    pairs = {(p[0], p[2]) for p in evidence["pairs"]}
    assert set(planted["nan_pairs"]) <= pairs
    assert not planted["excluded"] & set(evidence["rows"])
    assert evidence["n_pairs"] > len(pairs)  # identical copies within one split count as pairs of rows
    if not options:  # the pairs straddling a cell edge are found through the neighbouring cell
        assert planted["edge_pairs"][0] in pairs
    elif options.get("coarse") == COARSE and options.get("max_expand") is None:
        assert planted["edge_pairs"][1] in pairs


def test_near_duplicates_ignore_columns_and_leave_exact_copies_alone(engine, leaky, planted):
    from tether.plugins.leakage.near_duplicates import NearDuplicates

    check = NearDuplicates(sample=10**4)
    ignored = ("customer", "store", "ts")
    expected = check.check(whole_frame_input(leaky, ignore_columns=ignored))
    found = engine.near_duplicates(leaky, split_column="split", ignore_columns=ignored)
    assert_same(check.findings(found), expected)
    assert "customer" not in expected[0].evidence["text_columns"]
    assert not planted["exact"] & set(expected[0].evidence["rows"])  # exact copies: exact_duplicates' finding


def test_split_names_are_read_as_the_audit_reads_them(engine, tmp_path):
    from tether.errors import DataError

    frame = pd.DataFrame({"a": [1.0, 1.0 + 1e-9, 2.0, 3.0], "e": ["p", "p", "q", "q"],
                          "split": ["Train", " valid", "dev", "holdout"]})
    frame.iloc[:2].to_parquet(tmp_path / "0.parquet", index=False)
    frame.iloc[2:].to_parquet(tmp_path / "1.parquet", index=False)
    found = engine.near_duplicates(tmp_path, split_column="split")
    assert found.left.tolist() == [0] and found.right.tolist() == [1] and found.right_codes.tolist() == [1]
    assert engine.entity_overlap(tmp_path, split_column="split", entity_column="e").n_entities == 2
    frame.assign(split=["train", "test", "train", "later"]).iloc[2:].to_parquet(tmp_path / "1.parquet", index=False)
    with pytest.raises(DataError, match=r"leakage: split column 'split' has values 'later'; use train"):
        engine.near_duplicates(tmp_path, split_column="split")
    frame.assign(split=["train", "test", "train", None]).iloc[2:].to_parquet(tmp_path / "1.parquet", index=False)
    with pytest.raises(DataError, match=r"split column 'split' is empty at row 3; every row needs a split"):
        engine.entity_overlap(tmp_path, split_column="split", entity_column="e")
    with pytest.raises(DataError, match=r"entity column 'customer' is not in the data"):
        engine.entity_overlap(tmp_path, split_column="split", entity_column="customer")


def test_exact_duplicates_across_files_with_and_without_null_booleans(engine, leaky, planted):
    from tether.plugins.leakage.duplicates import ExactDuplicates

    check = ExactDuplicates(sample=10**4)
    expected = check.check(whole_frame_input(leaky))
    assert planted["exact"] <= set(expected[0].evidence["rows"])
    assert check.findings(engine.exact_duplicates(leaky, split_column="split")) == expected


# --- tether leakage --engine ---------------------------------------------------------------------


def leakage_json(tether_cli, *args) -> tuple[int, dict]:
    result = tether_cli("leakage", *args, "--json")
    assert result.exit_code in (0, 1), result
    return result.exit_code, json.loads(result.stdout)


def test_cli_engine_gives_the_whole_frame_audit(tether_cli, leaky, cluster):
    args = (leaky, "--split-column", "split", "--entity-column", "customer", "--ignore-column", "store")
    code, expected = leakage_json(tether_cli, *args)
    assert code == 1 and expected["failed"]
    assert {f["check"] for f in expected["findings"]} == {"entity_overlap", "exact_duplicates", "near_duplicates"}
    for engine in (["--engine", "local"], ["--engine", "dask", "--engine-param", f"address={cluster.scheduler_address}",
                                           "--engine-param", "timeout=10"]):
        got_code, got = leakage_json(tether_cli, *args, *engine)
        assert got_code == code and got["findings"] == expected["findings"]
        assert got["summary"] == expected["summary"]


def test_cli_engine_time_range_when_the_time_checks_are_off(tether_cli, leaky, tmp_path):
    (tmp_path / "policy.yaml").write_text("temporal_order: off\nexact_duplicates: warn\nentity_overlap: warn\n")
    args = (leaky, "--split-column", "split", "--time-column", "ts", "--policy", tmp_path / "policy.yaml")
    code, expected = leakage_json(tether_cli, *args)
    got_code, got = leakage_json(tether_cli, *args, "--engine", "local")
    assert got_code == code == 0
    assert got == expected and set(got["summary"]) == {"rows", "time_range"}


@pytest.mark.parametrize("args, message", [
    (["--time-column", "ts"], "leakage: temporal_order has no partitioned version to run on an engine; turn it off "
                              "in --policy (temporal_order: off) or run without --engine"),
    (["--label", "flag"], "leakage: label_shift, missingness_leakage, target_leakage have no partitioned version"),
    (["--engine-param", "workers=0"], "engine.params: unknown parameter 'workers' for engine plugin 'local'"),
    (["--engine-param", "workers"], "--engine-param: expected KEY=VALUE, got 'workers'"),
    (["--entity-column", "custmer"], "leakage: entity column 'custmer' is not in the data; did you mean 'customer'?"),
])
def test_cli_engine_errors_are_one_line(tether_cli, leaky, args, message):
    result = tether_cli("leakage", leaky, "--split-column", "split", "--engine", "local", *args)
    assert result.exit_code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tether: error: {message}"), result
    assert result.stdout == ""


def test_cli_engine_input_errors(tether_cli, leaky, tmp_path):
    read_folder(leaky).to_csv(tmp_path / "events.csv", index=False)
    cases = [
        (["events.csv", "--engine", "local"], "leakage: --engine reads a Parquet file or folder, not 'events.csv'"),
        ([leaky, "--engine", "dask", "--engine-param", "workers=0"],
         "engine.params.workers: must be at least 1, got 0"),
        ([leaky, "--engine", "dask", "--engine-param", "memory_limit=[1]"],
         "--engine-param: the value of 'memory_limit' must be a single value"),
        ([leaky, "--engine-param", "workers=2"], "--engine-param: give --engine too"),
        ([leaky, "--engine", "spark"], "--engine: unknown engine plugin 'spark' (available: dask, local)"),
    ]
    for args, message in cases:
        result = tether_cli("leakage", *args, "--split-column", "split")
        assert result.exit_code == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"tether: error: {message}"), result


def test_cli_engine_split_aliases(tether_cli, tmp_path):
    folder = tmp_path / "aliased"
    folder.mkdir()
    frame = pd.DataFrame({"a": [1.0, 1.0 + 1e-9, 2.0, 5.0], "split": ["train", "Test", "train", "test"]})
    frame.to_parquet(folder / "0.parquet", index=False)
    frame.iloc[:2].assign(a=[5.0, 2.0]).to_parquet(folder / "1.parquet", index=False)  # exact copies of rows 3, 2
    args = (folder, "--split-column", "split")
    code, expected = leakage_json(tether_cli, *args)
    assert code == 1 and {f["check"] for f in expected["findings"]} == {"exact_duplicates", "near_duplicates"}
    assert leakage_json(tether_cli, *args, "--engine", "local") == (code, expected)
    near = next(f for f in expected["findings"] if f["check"] == "near_duplicates")
    assert near["evidence"]["pairs"] == [[0, "train", 1, "test"]]


# --- tether run --engine-param -------------------------------------------------------------------


def test_run_takes_engine_params(tether_cli, leaky, tmp_path, cluster):
    chain = {"version": 1, "name": "params", "workspace": str(tmp_path / ".tether"),
             "stages": [{"stage": "snapshot", "id": "events", "plugin": "parquet", "params": {"path": str(leaky)}}]}
    (tmp_path / "chain.yaml").write_text(json.dumps(chain))
    local = tether_cli("run", "chain.yaml", "--json")
    assert local.exit_code == 0, local
    result = tether_cli("--log-level", "info", "run", "chain.yaml", "--engine", "dask", "--engine-param",
                        f"address={cluster.scheduler_address}", "--engine-param", "in_flight=1", "--json")
    assert result.exit_code == 0, result
    assert "partitions done" in result.stderr
    snapshot = json.loads(result.stdout)["outputs"]["events"]["data"]["id"]
    assert snapshot == json.loads(local.stdout)["outputs"]["events"]["data"]["id"]
    bad = tether_cli("run", "chain.yaml", "--engine", "dask", "--engine-param", "in_flight=0")
    assert bad.exit_code == 2
    assert "tether: error: chain.yaml: engine.params.in_flight: must be at least 1, got 0" in bad.stderr, bad
