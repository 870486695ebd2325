"""Split strategies, row fingerprints, the split stage and its manifest, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tether.errors import ConfigError, DataError, StageError
from tether.plugins.rows import row_fingerprints
from tether.plugins.splits.grouped import GroupSplit, StratifiedGroupSplit
from tether.plugins.splits.shuffled import RandomSplit, StratifiedSplit
from tether.plugins.splits.temporal import TimeGroupSplit, TimeSplit


def customers(n: int = 3000, entities: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer": np.array([f"C{i:04d}" for i in rng.integers(0, entities, n)], dtype=object),
        "ts": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 300 * 24, n), unit="h"),
        "x": rng.normal(0, 1, n),
        "y": (rng.random(n) < 0.2).astype("int64"),
    })


def sizes(labels):
    return pd.Series(labels).value_counts().to_dict()


# --- strategies ------------------------------------------------------------------------------


def test_random_split_follows_the_shares_and_is_reproducible():
    frame = customers()
    a = RandomSplit(seed=3).assign(frame)
    assert sizes(a) == {"train": 2100, "validation": 450, "test": 450}
    assert a.equals(RandomSplit(seed=3).assign(frame))
    assert not a.equals(RandomSplit(seed=4).assign(frame))


def test_stratified_split_keeps_the_class_balance():
    frame = customers(4000)
    labels = StratifiedSplit(label="y", seed=0).assign(frame).to_numpy()
    overall = frame["y"].mean()
    for name in ("train", "validation", "test"):
        assert abs(frame.loc[labels == name, "y"].mean() - overall) < 0.005


@pytest.mark.parametrize("cls", [GroupSplit, StratifiedGroupSplit])
def test_group_splits_keep_every_entity_in_one_split(cls):
    frame = customers()
    kwargs = {"label": "y"} if cls is StratifiedGroupSplit else {}
    labels = cls(entity_column="customer", seed=1, **kwargs).assign(frame)
    per_entity = pd.Series(labels.to_numpy()).groupby(frame["customer"].to_numpy()).nunique()
    assert (per_entity == 1).all()
    got = sizes(labels)
    assert abs(got["train"] / len(frame) - 0.7) < 0.06 and got["validation"] > 0 and got["test"] > 0
    assert labels.equals(cls(entity_column="customer", seed=1, **kwargs).assign(frame))


def test_time_split_orders_splits_and_applies_the_gap():
    frame = customers()
    labels = TimeSplit(time_column="ts").assign(frame).to_numpy()
    ts = frame["ts"]
    assert ts[labels == "train"].max() < ts[labels == "validation"].min()
    assert ts[labels == "validation"].max() < ts[labels == "test"].min()
    gapped = TimeSplit(time_column="ts", gap="7d").assign(frame).to_numpy()
    assert (gapped == "excluded").sum() > 0
    assert ts[gapped == "validation"].min() - ts[gapped == "train"].max() >= pd.Timedelta("7D")
    assert ts[gapped == "test"].min() - ts[gapped == "validation"].max() >= pd.Timedelta("7D")


def test_time_split_by_cutoffs():
    frame = customers()
    labels = TimeSplit(time_column="ts", validation_start="2025-08-01", test_start="2025-09-15T00:00:00Z").assign(frame)
    ts = frame["ts"]
    assert (ts[labels == "train"] < pd.Timestamp("2025-08-01", tz="UTC")).all()
    assert (ts[labels == "test"] >= pd.Timestamp("2025-09-15", tz="UTC")).all()


def test_time_group_split_keeps_time_order_and_entities_apart():
    frame = customers(4000, entities=800)
    labels = TimeGroupSplit(time_column="ts", entity_column="customer").assign(frame).to_numpy()
    live = labels != "excluded"
    per_entity = pd.Series(labels[live]).groupby(frame["customer"].to_numpy()[live]).nunique()
    assert (per_entity == 1).all()
    ts = frame["ts"]
    assert ts[labels == "train"].max() < ts[labels == "validation"].min()
    assert ts[labels == "validation"].max() < ts[labels == "test"].min()


# --- fingerprints ------------------------------------------------------------------------------


def test_row_fingerprints_ignore_order_index_and_dtype_quirks(tmp_path):
    frame = customers(200)
    fp = row_fingerprints(frame)
    assert len(set(fp.tolist())) == 200
    shuffled = frame.sample(frac=1, random_state=1)
    assert sorted(row_fingerprints(shuffled).tolist()) == sorted(fp.tolist())
    assert (row_fingerprints(frame[list(reversed(frame.columns))]) == fp).all()
    quirks = frame.assign(y=frame["y"].astype("float32"), ts=frame["ts"].astype("datetime64[us, UTC]"),
                          customer=frame["customer"].astype("string[pyarrow]"))
    assert (row_fingerprints(quirks) == fp).all()
    naive = frame.assign(ts=frame["ts"].dt.tz_localize(None))
    assert (row_fingerprints(naive) == fp).all()
    frame.to_parquet(tmp_path / "f.parquet")
    assert (row_fingerprints(pd.read_parquet(tmp_path / "f.parquet")) == fp).all()
    changed = frame.copy()
    changed.loc[5, "x"] += 1e-9
    assert (row_fingerprints(changed) != fp).sum() == 1


# --- bad input ---------------------------------------------------------------------------------


def test_ratios_that_do_not_sum_to_one_are_a_config_error(host):
    with pytest.raises(ConfigError, match=r"stages\[1\].params: .*sum to 1.1, not 1"):
        host.backends.create("split", "random", {"train": 0.8, "validation": 0.15, "test": 0.15}, where="stages[1]")
    with pytest.raises(ConfigError, match="must be between 0 and 1"):
        host.backends.create("split", "random", {"train": 1.2, "validation": -0.1, "test": -0.1})


def test_unparseable_and_mixed_zone_times_are_data_errors():
    frame = customers(5).assign(ts=["2025-01-01", "2025-01-02", "yesterday", "2025-01-04", "2025-01-05"])
    with pytest.raises(DataError, match=r"time column 'ts' has 1 unparseable values, e.g. 'yesterday' at row 2"):
        TimeSplit(time_column="ts").assign(frame)
    frame = customers(3).assign(ts=["2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+02:00", "2025-01-03T00:00:00"])
    with pytest.raises(DataError, match="time column 'ts' mixes time zones"):
        TimeSplit(time_column="ts").assign(frame)


def test_group_column_with_nulls_is_a_data_error():
    frame = customers(50)
    frame.loc[7, "customer"] = None
    with pytest.raises(DataError, match=r"group column 'customer' has 1 null values \(first at row 7\)"):
        GroupSplit(entity_column="customer").assign(frame)


def test_stratify_class_with_one_row_is_a_data_error():
    frame = customers(100).assign(y=[0] * 60 + [1] * 39 + [2])
    with pytest.raises(DataError, match=r"class 2 with only 1 row"):
        StratifiedSplit(label="y").assign(frame)


def test_entity_too_big_for_any_split_is_a_data_error():
    frame = customers(100)
    frame.loc[:80, "customer"] = "BIG"
    with pytest.raises(DataError,
                       match=r"entity 'BIG' of 'customer' has 81 rows \(81% of the data\), "
                             r"more than the largest split"):
        GroupSplit(entity_column="customer").assign(frame)


def test_missing_declared_column_is_a_data_error():
    with pytest.raises(DataError, match="entity_column 'client' is not a column"):
        GroupSplit(entity_column="client").assign(customers(10))


# --- the stage, through a chain -------------------------------------------------------------------


def write_chain(tmp_path, frame, split_params, policy=None):
    import yaml

    frame.to_parquet(tmp_path / "data.parquet")
    chain = {"version": 1, "name": "t", "workspace": ".tether",
             "stages": [{"stage": "snapshot", "plugin": "parquet", "params": {"path": "data.parquet", "dataset": "d"}},
                        {"stage": "split", **split_params}]}
    if policy is not None:
        chain["policy"] = policy
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(chain), encoding="utf-8")
    return path


def run(path, host):
    from tether.config import load_chain
    from tether.runner import run_chain
    from tether.workspace import Workspace

    chain = load_chain(path, host)
    ws = Workspace.for_chain(chain, host)
    try:
        return run_chain(chain, host, workspace=ws)
    finally:
        ws.close()


def test_split_stage_records_a_manifest_usable_for_the_same_rows(tmp_path, host):
    from tether.plugins.splits.assignment import rows_of
    from tether.workspace import Workspace

    frame = customers(2000, entities=2000)
    frame["customer"] = [f"C{i:05d}" for i in range(len(frame))]
    path = write_chain(tmp_path, frame, {"plugin": "time", "params": {
        "time_column": "ts", "entity_column": "customer", "label": "y", "label_definition": "bought within 30 days"}})
    _, outputs = run(path, host)
    manifest = outputs["split"]
    assert manifest.findings == ()
    assert manifest.columns == {"entity": "customer", "time": "ts", "label": "y"}
    assert manifest.label_definition == "bought within 30 days"
    assert manifest.summary["rows"] == manifest.sizes == {"train": 1400, "validation": 300, "test": 300}
    assert set(manifest.summary["class_balance"]["test"]) == {"0", "1"}
    assert manifest.summary["entities"]["validation"] == 300
    ws = Workspace.open(host, tmp_path / ".tether")
    try:
        test_rows = rows_of(frame.sample(frac=1, random_state=0), ws, manifest, "test")
        assert len(test_rows) == 300 and test_rows["ts"].min() > frame["ts"].sort_values().iloc[1699]
    finally:
        ws.close()


def test_a_failing_check_fails_the_stage_but_stores_the_manifest(tmp_path, host):
    from tether.plugins.leakage.policy import LeakageFailed
    from tether.workspace import Workspace

    frame = customers(1000)
    path = write_chain(tmp_path, frame, {"plugin": "random", "params": {"entity_column": "customer",
                                                                        "html": "reports/split.html"}},
                       policy={"leakage": {"near_duplicates": "off"}})
    with pytest.raises(StageError,
                       match=r"leakage checks failed: entity_overlap .*see `tether splits show split-") as err:
        run(path, host)
    failed = err.value if isinstance(err.value, LeakageFailed) else err.value.__cause__
    assert isinstance(failed, LeakageFailed)
    report = (tmp_path / "reports" / "split.html").read_text()
    assert "entity_overlap" in report and failed.manifest_id in report
    ws = Workspace.open(host, tmp_path / ".tether")
    try:
        manifest = ws.store.get(failed.manifest_id, kind="split")
        assert [f.check for f in manifest.findings] == ["entity_overlap"]
        assert manifest.policy == {"near_duplicates": "off"}
        run_record = ws.store.find("run", name="t")[0]
        assert run_record.status == "failed" and "entity_overlap" in run_record.error
    finally:
        ws.close()
    path = write_chain(tmp_path, frame, {"plugin": "random", "params": {"entity_column": "customer"}},
                       policy={"leakage": {"entity_overlap": "warn"}})
    _, outputs = run(path, host)
    assert [(f.check, f.severity) for f in outputs["split"].findings] == [("entity_overlap", "warning")]


def test_splits_show_and_leakage_cli(tmp_path, tether_cli):
    import json

    frame = customers(1500)
    frame.to_parquet(tmp_path / "data.parquet")
    path = write_chain(tmp_path, frame, {"plugin": "group", "params": {"entity_column": "customer", "label": "y",
                                                                       "time_column": "ts"}},
                       policy={"leakage": {"temporal_order": "warn"}})
    result = tether_cli("run", path, "--json")
    assert result.exit_code == 0, result
    split_id = json.loads(result.stdout)["outputs"]["split"]["data"]["id"]
    shown = tether_cli("splits", "show", split_id, "--html", "report.html")
    assert shown.exit_code == 0, shown
    assert "strategy group" in shown.stdout and "entities" in shown.stdout and "[warn] temporal_order" in shown.stdout
    assert "temporal_order" in (tmp_path / "report.html").read_text()
    shown_json = json.loads(tether_cli("splits", "show", split_id, "--json").stdout)
    assert shown_json["data"]["findings"][0]["check"] == "temporal_order"
    listed = tether_cli("splits", "ls")
    assert listed.exit_code == 0 and listed.stdout.startswith(split_id) and "1 findings (0 failing)" in listed.stdout
    missing = tether_cli("splits", "show", "split-nope")
    assert missing.exit_code == 2 and missing.stderr.startswith("tether: error: no split 'split-nope'")

    frame["split"] = np.where(np.arange(len(frame)) % 5 == 0, "test", "train")
    frame.to_csv(tmp_path / "made_elsewhere.csv", index=False)
    clean = tether_cli("leakage", "made_elsewhere.csv", "--split-column", "split", "--label", "y")
    assert clean.exit_code == 0, clean
    assert "no leakage findings" in clean.stdout
    leaky = tether_cli("leakage", "made_elsewhere.csv", "--split-column", "split", "--entity-column", "customer",
                       "--json")
    assert leaky.exit_code == 1, leaky
    report = json.loads(leaky.stdout)
    assert report["failed"] is True and [f["check"] for f in report["findings"]] == ["entity_overlap"]
    assert leaky.stderr.strip() == "tether: error: leakage: 1 failing findings: entity_overlap"
    bad = tether_cli("leakage", "made_elsewhere.csv", "--split-column", "fold")
    assert bad.exit_code == 2
    assert bad.stderr.strip().startswith("tether: error: leakage: split column 'fold' is not in the data")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_policy_typos_and_missing_catalogues_fail_before_the_run(tmp_path, host):
    from tether.workspace import Workspace

    frame = customers(200)
    path = write_chain(tmp_path, frame, {"plugin": "random", "params": {}},
                       policy={"leakage": {"entity_overlaps": "fail"}})
    with pytest.raises(ConfigError,
                       match=r"policy.leakage: unknown leakage check 'entity_overlaps'; did you mean 'entity_overlap'"):
        run(path, host)
    path = write_chain(tmp_path, frame,
                       {"plugin": "time", "params": {"time_column": "ts", "features_from": "features.yaml"}})
    with pytest.raises(ConfigError, match=r"feature catalogue '.*features.yaml' not found"):
        run(path, host)
    ws = Workspace.open(host, tmp_path / ".tether")
    try:
        assert ws.store.find("run") == []
    finally:
        ws.close()


def test_column_and_custom_strategies(tmp_path, host, monkeypatch):
    frame = customers(300).assign(fold=lambda f: np.where(np.arange(len(f)) % 3 == 0, "Valid ", "train"))
    labels = host.backends.create("split", "column", {"split_column": "fold"}).assign(frame)
    assert sizes(labels) == {"train": 200, "validation": 100}
    with pytest.raises(DataError, match=r"split column 'fold' has values 'oops'"):
        host.backends.create("split", "column", {"split_column": "fold"}).assign(frame.assign(fold="oops"))
    (tmp_path / "mysplits.py").write_text(
        "def by_parity(frame, seed):\n    return ['test' if i % 2 else 'train' for i in range(len(frame))]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    labels = host.backends.create("split", "custom", {"function": "mysplits:by_parity"}).assign(frame)
    assert sizes(labels) == {"train": 150, "test": 150}


def test_time_split_with_feature_catalogue_fails_on_a_late_feature(tmp_path, host):
    frame = customers(500)
    frame["refund"] = frame["x"] * 2
    (tmp_path / "features.yaml").write_text(
        "features:\n  - {name: refund, availability_lag: 14d, owner: billing}\n  - {name: x, availability_lag: 0s}\n")
    path = write_chain(tmp_path, frame,
                       {"plugin": "time", "params": {"time_column": "ts", "features_from": "features.yaml"}})
    with pytest.raises(StageError,
                       match=r"feature_availability \(1 features are known only after "
                             r"the prediction time 'ts': refund"):
        run(path, host)


def test_bad_split_input_through_the_cli_is_one_line_exit_2(tmp_path, tether_cli):
    frame = customers(300)
    frame["customer"] = frame["customer"].astype(object)
    frame.loc[11, "customer"] = None
    cases = [
        ({"plugin": "random", "params": {"train": 0.5, "validation": 0.2, "test": 0.2}},
         "stages[1].params: split ratios train 0.5 + validation 0.2 + test 0.2 sum to 0.9, not 1"),
        ({"plugin": "group", "params": {"entity_column": "customer"}},
         "group column 'customer' has 1 null values (first at row 11)"),
        ({"plugin": "time", "params": {"time_column": "ts", "gap": "a week"}},
         "gap 'a week' is not a duration"),
    ]
    for split, expected in cases:
        path = write_chain(tmp_path, frame, split)
        result = tether_cli("run", path)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, result
        assert lines[-1].startswith("tether: error: ") and expected in lines[-1], result


def test_column_split_in_a_chain_checks_rows_without_the_split_column(tmp_path, host):
    frame = customers(400)
    frame["fold"] = np.where(np.arange(len(frame)) % 4 == 0, "test", "train")
    cols = ["customer", "ts", "x", "y"]
    frame.loc[1, cols] = frame.loc[0, cols].to_numpy()  # 0: test, 1: train
    path = write_chain(tmp_path, frame, {"plugin": "column", "params": {"split_column": "fold"}},
                       policy={"leakage": {"exact_duplicates": "warn"}})
    _, outputs = run(path, host)
    (finding,) = outputs["split"].findings
    assert finding.check == "exact_duplicates" and finding.evidence["rows"] == [0, 1]
