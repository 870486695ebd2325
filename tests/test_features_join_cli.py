"""``tether features join``: the partitioned point-in-time join from the command line, on the
local engine and on a Dask ``LocalCluster`` (2 worker processes, started once for the module),
equal to the in-memory ``point_in_time_join``; bad input refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engines_helpers import read_folder, write_entities_and_features


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> tuple[Path, Path]:
    return write_entities_and_features(tmp_path_factory.mktemp("join"))


@pytest.fixture(params=["local", "dask"])
def engine_args(request) -> list[str]:
    if request.param == "local":
        return []  # no --engine: the local engine
    address = request.getfixturevalue("cluster").scheduler_address
    return ["--engine", "dask", "--engine-param", f"address={address}"]


def joined_parts(out: dict):
    """The output parts as one frame in entity row order, without the row number column."""
    import pandas as pd
    from tether.plugins.engines.work import ENTITY_ROW

    parts = [pd.read_parquet(p) for p in out["parts"]]
    assert all(p[ENTITY_ROW].is_monotonic_increasing for p in parts)
    return pd.concat(parts).sort_values(ENTITY_ROW).drop(columns=ENTITY_ROW).reset_index(drop=True)


def run_join(tether_cli, entities, features, output, *args: str):
    result = tether_cli("features", "join", entities, features, "--output", output, *args, "--json")
    assert result.exit_code == 0, result
    return json.loads(result.stdout)


def test_join_equals_the_in_memory_join(tether_cli, tables, engine_args, tmp_path):
    import pandas as pd
    from tether.plugins.features.pit import point_in_time_join

    entities, features = tables
    expected = point_in_time_join(read_folder(entities), read_folder(features), entity="id", prediction_time="ts",
                                  lag="1d", ttl="20d")
    out = run_join(tether_cli, entities, features, tmp_path / "joined", "--entity", "id", "--prediction-time", "ts",
                   "--lag", "1d", "--ttl", "20d", *engine_args)
    assert out["engine"] == ("dask" if engine_args else "local")
    assert out["rows"] == len(expected) == 600
    assert sorted(Path(p).name for p in out["parts"]) == sorted(p.name for p in (tmp_path / "joined").iterdir())
    joined = joined_parts(out)
    pd.testing.assert_frame_equal(joined, expected)
    assert joined["spend"].notna().sum() > 100 and joined["spend"].isna().sum() > 10


def test_join_options_reach_the_join(tether_cli, tmp_path, engine_args):
    """--column, --feature-time, --available-at, --duplicates and a composite --entity key."""
    import pandas as pd
    from tether.plugins.features.pit import point_in_time_join

    day = pd.Timestamp("2026-01-01", tz="UTC")
    entities = pd.DataFrame({"shop": ["a", "a", "b", "b"], "item": [1, 2, 1, 1],
                             "at": day + pd.to_timedelta([5, 5, 5, 9], unit="D")})
    features = pd.DataFrame({"shop": ["a", "a", "a", "b", "b", "b"], "item": [1, 1, 2, 1, 1, 1],
                             "ts": day + pd.to_timedelta([1, 1, 2, 3, 4, 8], unit="D"),
                             "known": day + pd.to_timedelta([1, 1, 2, 3, 6, 8], unit="D"),
                             "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "stock": [10, 20, 30, 40, 50, 60]})
    entities.to_parquet(tmp_path / "entities.parquet", index=False)
    features.to_parquet(tmp_path / "features.parquet", index=False)
    join = {"entity": ["shop", "item"], "prediction_time": "at", "feature_time": "ts", "columns": ["price"],
            "available_at": "known", "duplicates": "last"}
    expected = point_in_time_join(entities, features, **join)
    out = run_join(tether_cli, tmp_path / "entities.parquet", tmp_path / "features.parquet", tmp_path / "joined",
                   "--entity", "shop", "--entity", "item", "--prediction-time", "at", "--feature-time", "ts",
                   "--column", "price", "--available-at", "known", "--duplicates", "last", *engine_args)
    joined = joined_parts(out)
    pd.testing.assert_frame_equal(joined, expected)
    # the last of the two (a, 1) rows; (b, 1) at day 5: the day-4 row is known only on day 6
    assert joined["price"].tolist() == [2.0, 3.0, 4.0, 6.0]
    assert "stock" not in joined


@pytest.mark.parametrize(("args", "expected"), [
    ((), 1.0),                              # the value of day 9.5, available at once
    (("--lag", "1d"), 2.0),                 # known on day 10.5 only: the day-2 value
    (("--lag", "12h"), 1.0),                # known exactly at prediction time: used
    (("--lag", "1d", "--ttl", "7d"), None),  # the day-2 value is 8 days old: missing, no fallback
    (("--ttl", "12h"), 1.0),                # exactly the TTL old: still used
    (("--ttl", "11h"), None),               # older than the TTL: missing
])
def test_lag_and_ttl_are_honoured(tether_cli, tmp_path, args, expected):
    import pandas as pd

    day = pd.Timestamp("2026-01-01")
    pd.DataFrame({"id": [7], "at": [day + pd.Timedelta("10D")]}).to_parquet(tmp_path / "e.parquet", index=False)
    pd.DataFrame({"id": [7, 7], "feature_timestamp": [day + pd.Timedelta("9D12h"), day + pd.Timedelta("2D")],
                  "value": [1.0, 2.0]}).to_parquet(tmp_path / "f.parquet", index=False)
    out = run_join(tether_cli, tmp_path / "e.parquet", tmp_path / "f.parquet", tmp_path / "joined",
                   "--entity", "id", "--prediction-time", "at", *args)
    value = joined_parts(out)["value"].iloc[0]
    assert (pd.isna(value) if expected is None else value == expected)


def test_human_output_is_an_aligned_summary(tether_cli, tables, tmp_path):
    entities, features = tables
    result = tether_cli("features", "join", entities, features, "--output", tmp_path / "joined",
                        "--entity", "id", "--prediction-time", "ts")
    assert result.exit_code == 0, result
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["output", "rows", "joined", "parts", "engine"]
    assert row.split() == [str(tmp_path / "joined"), "600", "1", "local"]
    assert header.index("rows joined") == row.index("600")


BASE = ("--entity", "id", "--prediction-time", "ts")


@pytest.mark.parametrize(("case", "args", "message"), [
    ("csv", BASE, r"ENTITIES '\S+entities\.csv' is a CSV file; .*convert it to Parquet"),
    ("json", BASE, r"ENTITIES '\S+entities\.json' is not a Parquet file \(\.parquet, \.pq\) or a folder"),
    ("missing input", BASE, r"FEATURES '\S+nowhere' not found"),
    ("entity", ("--entity", "customer", "--prediction-time", "ts"),
     r"--entity: ENTITIES '\S+entities' has no column 'customer' \(columns: id, ts, label\)"),
    ("prediction time", ("--entity", "id", "--prediction-time", "when"),
     r"--prediction-time: ENTITIES '\S+entities' has no column 'when'"),
    ("feature time", (*BASE, "--feature-time", "ts"), r"--feature-time: FEATURES '\S+features' has no column 'ts' "
                                                       r"\(columns: id, feature_timestamp, spend, plan\)"),
    ("column", (*BASE, "--column", "spent"), r"--column: FEATURES '\S+features' has no column 'spent'"),
    ("available at", (*BASE, "--available-at", "known"), r"--available-at: FEATURES '\S+features' has no column"),
    ("lag", (*BASE, "--lag", "2 fortnights"), r"--lag '2 fortnights' is not a duration such as '2d'"),
    ("negative ttl", (*BASE, "--ttl", "-1d"), r"--ttl '-1d' is negative"),
    ("empty ttl", (*BASE, "--ttl", " "), r"--ttl: the duration is empty"),
    ("empty entity", ("--entity", "", "--prediction-time", "ts"), r"--entity: the column name is empty"),
    ("empty column", (*BASE, "--column", " "), r"--column: the column name is empty"),
    ("engine param alone", (*BASE, "--engine-param", "workers=2"), r"--engine-param: give --engine too"),
    ("unknown engine", (*BASE, "--engine", "spark"), r"spark"),
    ("existing output", BASE, r"--output: '\S+joined' already exists; the join writes a new folder"),
])
def test_bad_input_is_one_line_and_writes_nothing(tether_cli, tables, tmp_path, case, args, message):
    import re

    entities, features = tables
    if case in ("csv", "json"):
        entities = tmp_path / f"entities.{case}"
        read_folder(tables[0]).to_csv(entities, index=False)
    if case == "missing input":
        features = tmp_path / "nowhere"
    output = tmp_path / "joined"
    if case == "existing output":
        output.mkdir()
        (output / "keep.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = tether_cli("features", "join", entities, features, "--output", output, *args)
    assert result.exit_code == 2, result
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("tether: error: "), result
    assert re.search(message, result.stderr), result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    if case == "existing output":
        assert (output / "keep.txt").read_text() == "mine"


def test_a_feature_column_already_in_the_entity_table_is_refused(tether_cli, tmp_path):
    import pandas as pd

    when = pd.Timestamp("2026-01-02", tz="UTC")
    pd.DataFrame({"id": [1], "ts": [when], "spend": [3.0]}).to_parquet(tmp_path / "e.parquet", index=False)
    pd.DataFrame({"id": [1], "feature_timestamp": [when], "spend": [4.0]}).to_parquet(tmp_path / "f.parquet",
                                                                                      index=False)
    result = tether_cli("features", "join", tmp_path / "e.parquet", tmp_path / "f.parquet", "--output",
                        tmp_path / "joined", *BASE)
    assert result.exit_code == 2, result
    assert result.stderr.strip().endswith("column 'spend' is also in ENTITIES "
                                          f"'{tmp_path / 'e.parquet'}'; rename it, or pick the feature columns "
                                          "with --column"), result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.parquet", "f.parquet"]


def test_an_ambiguous_join_fails_on_the_engine_and_leaves_no_output(tether_cli, tmp_path):
    import pandas as pd

    when = pd.Timestamp("2026-01-02", tz="UTC")
    pd.DataFrame({"id": [1], "ts": [when]}).to_parquet(tmp_path / "e.parquet", index=False)
    pd.DataFrame({"id": [1, 1], "feature_timestamp": [when, when], "spend": [3.0, 4.0]}).to_parquet(
        tmp_path / "f.parquet", index=False)
    result = tether_cli("features", "join", tmp_path / "e.parquet", tmp_path / "f.parquet", "--output",
                        tmp_path / "joined", *BASE)
    assert result.exit_code == 2, result
    assert "ambiguous" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.parquet", "f.parquet"]
