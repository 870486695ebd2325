"""Split strategies, row fingerprints, the split stage and its manifest, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import traced_peak
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
    with pytest.raises(ConfigError, match=r"a share must be in \[0, 1\]"):
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
    with pytest.raises(DataError, match="group split: entity_column 'client' is not in the data"):
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


# --- results stay the same (guards the memory work: same ids and findings as before it) -----------


def mixed_rows(n: int = 1500, seed: int = 7) -> pd.DataFrame:
    """Customers plus text with nulls and case variants, booleans, floats with NaN, a zero column,
    an exact copy and a near copy across the ``fold`` split."""
    rng = np.random.default_rng(seed)
    frame = customers(n, entities=150, seed=seed)
    frame["city"] = np.where(rng.random(n) < 0.1, None, rng.choice(["Oslo", "oslo ", "Lima"], n)).astype(object)
    frame["flag"] = rng.random(n) < 0.5
    frame["amount"] = np.where(rng.random(n) < 0.05, np.nan, rng.normal(100, 20, n))
    frame["zero"] = 0.0
    frame.iloc[10] = frame.iloc[11].to_numpy()
    frame.iloc[20] = frame.iloc[22].to_numpy()
    frame.loc[20, ["amount", "zero", "x"]] = [frame.loc[22, "amount"] * (1 + 1e-8), 3e-7, frame.loc[22, "x"] + 1e-9]
    frame["fold"] = np.where(np.arange(n) % 5 == 0, "test", np.where(np.arange(n) % 5 == 1, "val", "train"))
    return frame.astype({"flag": bool, "y": "int64"})


def findings_digest(findings) -> str:
    import hashlib
    import json

    from tether import serde

    payload = json.dumps([serde.converter.unstructure(f) for f in findings], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


SAME_AS_BEFORE = [  # (split, manifest id, findings digest), recorded before the memory work
    ({"plugin": "random", "params": {"entity_column": "customer", "label": "y", "ignore_columns": ["fold"]}},
     "split-e85892466f6bcdcf", "ea7128b2c4b715a5"),
    ({"plugin": "stratified", "params": {"label": "y", "time_column": "ts", "ignore_columns": ["fold"]}},
     "split-7d2bd523756928d0", "fefe9477c4fe19c6"),
    ({"plugin": "group", "params": {"entity_column": "customer", "label": "y", "seed": 3}},
     "split-3c63e4dbc510577f", "4f53cda18c2baa0c"),
    ({"plugin": "time_group", "params": {"entity_column": "customer", "time_column": "ts", "label": "y", "gap": "2d"}},
     "split-18b2817fed30733d", "4f53cda18c2baa0c"),
    ({"plugin": "column", "params": {"split_column": "fold", "label": "y"}},
     "split-47de03199c4b5c2f", "232e231fd40cc8c5"),
]


@pytest.mark.parametrize(("split", "manifest_id", "digest"), SAME_AS_BEFORE,
                         ids=[case[0]["plugin"] for case in SAME_AS_BEFORE])
def test_manifest_ids_and_findings_are_unchanged(tmp_path, host, split, manifest_id, digest):
    policy = {"leakage": {"exact_duplicates": "warn", "entity_overlap": "warn", "temporal_order": "warn"}}
    _, outputs = run(write_chain(tmp_path, mixed_rows(), split, policy=policy), host)
    manifest = outputs["split"]
    assert (manifest.id, findings_digest(manifest.findings)) == (manifest_id, digest)


# --- bad params: before the run, with key paths -----------------------------------------------------


def test_bad_sizes_and_shares_fail_before_the_run_naming_the_key(tmp_path, host):
    from tether.workspace import Workspace

    frame = customers(100)
    cases = [({"plugin": "random", "params": {"train": 1.5, "validation": -0.25, "test": -0.25}},
              None, r"stages\[1\]\.params\.train: a share must be in \[0, 1\], got 1\.5"),
             ({"plugin": "group", "params": {"entity_column": "customer", "seed": -1}},
              None, r"stages\[1\]\.params\.seed: must be at least 0, got -1"),
             ({"plugin": "random", "params": {}}, {"leakage": {"near_duplicates": {"coarse": 0}}},
              r"policy\.leakage\.near_duplicates\.params\.coarse: must be at least 1, got 0"),
             ({"plugin": "random", "params": {}}, {"leakage": {"near_duplicates": {"max_pairs": -1}}},
              r"policy\.leakage\.near_duplicates\.params\.max_pairs: must be at least 1, got -1"),
             ({"plugin": "random", "params": {}}, {"leakage": {"label_shift": {"action": "warn", "max_distance": 3}}},
              r"policy\.leakage\.label_shift\.params\.max_distance: must be in \[0, 1\], got 3")]
    for split, policy, expected in cases:
        with pytest.raises(ConfigError, match=expected):
            run(write_chain(tmp_path, frame, split, policy=policy), host)
    ws = Workspace.open(host, tmp_path / ".tether")
    try:
        assert ws.store.find("run") == []
    finally:
        ws.close()


def test_declared_columns_missing_from_the_data_suggest_the_nearest(tmp_path, host, tether_cli):
    frame = customers(200)
    cases = [({"plugin": "random", "params": {"time_column": "tss"}},
              "stages[1].params.time_column: column 'tss' is not in the data; did you mean 'ts'?"),
             ({"plugin": "group", "params": {"entity_column": "custome"}},
              "stages[1].params.entity_column: column 'custome' is not in the data; did you mean 'customer'?"),
             ({"plugin": "stratified", "params": {"label": "yy"}},
              "stages[1].params.label: column 'yy' is not in the data; did you mean 'y'?"),
             ({"plugin": "random", "params": {"ignore_columns": ["x", "xx"]}},
              "stages[1].params.ignore_columns[1]: column 'xx' is not in the data; did you mean 'x'?")]
    for split, expected in cases:
        result = tether_cli("run", write_chain(tmp_path, frame, split))
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, result
        assert lines[-1].startswith("tether: error: ") and expected in lines[-1], result
    with pytest.raises(DataError, match="entity_column 'client' is not in the data; did you mean"):
        GroupSplit(entity_column="client").assign(customers(10).rename(columns={"customer": "clients"}))


# --- memory: 5 million rows x 20 columns split within 1.5 GiB (benchmarks/bench_split_memory.py) -------


def test_time_split_labels_share_one_string_per_split():
    # one str object per row cost ~65 bytes a row (330 MB for 5 million rows), held by the whole stage
    frame = customers(3000)
    for strategy in (TimeSplit(time_column="ts", gap="2d"),
                     TimeGroupSplit(time_column="ts", entity_column="customer", gap="2d")):
        labels = strategy.assign(frame).to_numpy()
        assert set(labels) == {"train", "validation", "test", "excluded"}
        assert len({id(v) for v in labels}) == 4, strategy.name


def test_row_fingerprints_hash_a_block_of_rows_at_a_time():
    n = 6 << 20
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=n), "n": rng.integers(0, 9, n)})
    fingerprints, peak = traced_peak(lambda: row_fingerprints(frame))
    assert fingerprints[:1000].tolist() == row_fingerprints(frame.iloc[:1000]).tolist()
    assert peak < 2.5 * fingerprints.nbytes  # was 5 columns' worth: copies and hashes of whole columns


def test_assignment_frame_is_built_without_a_fixed_width_copy_of_the_names():
    from tether.plugins.splits.stage import _assignment_frame

    n = 2_000_000
    labels = np.array(["train", "validation", "test", "excluded"], dtype=object)[np.arange(n) % 4]
    fingerprints = np.arange(n, dtype=np.uint64)
    frame, peak = traced_peak(lambda: _assignment_frame(fingerprints, labels))
    assert frame["split"].tolist()[:4] == ["train", "validation", "test", "excluded"]
    assert frame.dtypes.to_dict() == pd.DataFrame({"split": labels.astype(str)}).dtypes.to_dict() | {
        "row": np.dtype("int64"), "row_fingerprint": np.dtype("uint64")}
    assert peak < 40 * n  # labels.astype(str) alone was 40 bytes a row ('<U10')
