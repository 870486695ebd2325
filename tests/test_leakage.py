"""Leakage checks on generated data: each planted leak is reported exactly, clean data is quiet."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import traced_peak
from tether.errors import ConfigError
from tether.plugins.leakage.duplicates import ExactDuplicates
from tether.plugins.leakage.entities import EntityOverlap
from tether.plugins.leakage.input import FeatureTiming, LeakageInput
from tether.plugins.leakage.label_shift import LabelShift
from tether.plugins.leakage.near_duplicates import NearDuplicates
from tether.plugins.leakage.policy import run_checks
from tether.plugins.leakage.scoring import auc_binary
from tether.plugins.leakage.target import MissingnessLeakage, TargetLeakage
from tether.plugins.leakage.temporal import FeatureAvailability, TemporalOrder
from tether.plugins.splits.grouped import GroupSplit
from tether.plugins.splits.shuffled import RandomSplit
from tether.plugins.splits.temporal import TimeSplit


def independent_rows(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Independent rows: continuous features, a weak label, a text column, random gaps."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(50, 10, n) for i in range(5)})
    frame["count"] = rng.integers(0, 1000, n)
    frame["city"] = rng.choice(["Oslo", "New York", "San Jose", "Lima"], n)
    frame["note"] = np.where(rng.random(n) < 0.3, None, "seen")
    frame["score"] = np.where(rng.random(n) < 0.2, np.nan, rng.normal(0, 1, n))
    frame["ts"] = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 365 * 24 * 60, n), unit="min")
    logit = (frame["x0"] - 50) / 10
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    return frame


def random_split(frame, seed=1):
    return RandomSplit(seed=seed).assign(frame).to_numpy().copy()


def planted_rows(finding) -> set[int]:
    return set(finding.evidence["rows"])


def by_check(findings):
    return {f.check: f for f in findings}


# --- clean data ------------------------------------------------------------------------------


def test_clean_random_split_of_independent_rows_has_no_findings():
    frame = independent_rows()
    data = LeakageInput(frame=frame, splits=random_split(frame), label="y")
    assert run_checks(data, {}) == []


def test_clean_group_and_time_splits_have_no_findings():
    rng = np.random.default_rng(3)
    frame = independent_rows(3000)
    frame["customer"] = rng.integers(0, 400, len(frame)).astype(str)
    splits = GroupSplit(entity_column="customer", seed=2).assign(frame).to_numpy().copy()
    assert run_checks(LeakageInput(frame=frame, splits=splits, entity_column="customer", label="y"), {}) == []
    splits = TimeSplit(time_column="ts").assign(frame).to_numpy().copy()
    assert run_checks(LeakageInput(frame=frame, splits=splits, time_column="ts"), {}) == []


# --- duplicates --------------------------------------------------------------------------------


def test_exact_duplicates_reports_exactly_the_planted_rows():
    frame = independent_rows(2000)
    splits = random_split(frame)
    train = np.flatnonzero(splits == "train")[[3, 50, 400, 900, 1200]]
    test_rows = np.flatnonzero(splits == "test")[[1, 7, 20, 33, 60]]
    frame.iloc[test_rows] = frame.iloc[train].to_numpy()
    frame = frame.astype(independent_rows(1).dtypes.to_dict())
    findings = run_checks(LeakageInput(frame=frame, splits=splits), {})
    found = by_check(findings)
    assert set(found) == {"exact_duplicates"}
    f = found["exact_duplicates"]
    assert f.severity == "error"
    assert planted_rows(f) == set(train) | set(test_rows)
    assert f.evidence["n_groups"] == 5 and f.evidence["split_pairs"] == {"train/test": 5}
    assert f.fix


def test_duplicates_within_one_split_are_not_leakage():
    frame = independent_rows(1000)
    splits = random_split(frame)
    train = np.flatnonzero(splits == "train")
    frame.iloc[train[:10]] = frame.iloc[train[10:20]].to_numpy()
    frame = frame.astype(independent_rows(1).dtypes.to_dict())
    assert ExactDuplicates().check(LeakageInput(frame=frame, splits=splits)) == []


def test_exact_duplicates_ignore_columns_catches_copies_with_new_ids():
    frame = independent_rows(1000)
    frame["row_id"] = np.arange(len(frame))
    splits = random_split(frame)
    src, dst = np.flatnonzero(splits == "train")[:3], np.flatnonzero(splits == "validation")[:3]
    cols = [c for c in frame.columns if c != "row_id"]
    frame.loc[dst, cols] = frame.loc[src, cols].to_numpy()
    frame = frame.astype({**independent_rows(1).dtypes.to_dict(), "row_id": "int64"})
    assert ExactDuplicates().check(LeakageInput(frame=frame, splits=splits)) == []
    found = ExactDuplicates().check(LeakageInput(frame=frame, splits=splits, ignore_columns=("row_id",)))
    assert planted_rows(found[0]) == set(src) | set(dst)


def test_near_duplicates_catch_noisy_and_recased_copies_exactly():
    frame = independent_rows(3000)
    splits = random_split(frame, seed=4)
    rng = np.random.default_rng(9)
    src = np.flatnonzero(splits == "train")[[5, 80, 300, 700]]
    dst = np.flatnonzero(splits == "test")[[2, 9, 40, 100]]
    copy = frame.iloc[src].copy()
    for c in ["x0", "x1", "x2", "x3", "x4"]:
        copy[c] = copy[c] * (1 + rng.uniform(-5e-7, 5e-7, len(copy)))
    copy["city"] = "  " + copy["city"].str.upper().str.replace(" ", "   ") + " "
    for c in copy.columns:
        frame[c] = frame[c].astype(object) if frame[c].dtype == object else frame[c]
    frame.iloc[dst] = copy.to_numpy()
    frame = frame.astype(independent_rows(1).dtypes.to_dict())
    found = by_check(run_checks(LeakageInput(frame=frame, splits=splits), {}))
    assert set(found) == {"near_duplicates"}
    f = found["near_duplicates"]
    assert f.severity == "warning"
    assert planted_rows(f) == set(src) | set(dst)
    assert f.evidence["n_pairs"] == 4
    assert {(p[0], p[2]) for p in f.evidence["pairs"]} == {tuple(sorted(p)) for p in zip(src, dst)}


def test_near_duplicates_respect_the_tolerance():
    frame = independent_rows(500)
    splits = random_split(frame)
    src, dst = np.flatnonzero(splits == "train")[:2], np.flatnonzero(splits == "test")[:2]
    frame.iloc[dst] = frame.iloc[src].to_numpy()
    frame = frame.astype(independent_rows(1).dtypes.to_dict())
    frame.loc[dst, "x0"] = frame.loc[src, "x0"].to_numpy() * (1 + 1e-3)  # beyond 1e-6
    assert NearDuplicates().check(LeakageInput(frame=frame, splits=splits)) == []
    found = NearDuplicates(tolerance=1e-2).check(LeakageInput(frame=frame, splits=splits))
    assert planted_rows(found[0]) == set(src) | set(dst)


def test_near_duplicates_straddling_a_grid_boundary_are_found():
    check = NearDuplicates()
    step = -np.log1p(-check.tolerance) * 1.000001
    width = step * check.coarse
    edge = np.exp(37 * width - 0.318309886)  # exactly on a coarse cell boundary
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(100, 10, 200), "b": rng.normal(0, 1, 200)})
    frame.loc[0, "a"], frame.loc[1, "a"] = edge * (1 - 3e-7), edge * (1 + 3e-7)
    frame.loc[1, "b"] = frame.loc[0, "b"]
    splits = np.array(["train", "test"] + ["train"] * 198, dtype=object)
    found = check.check(LeakageInput(frame=frame, splits=splits))
    assert planted_rows(found[0]) == {0, 1}


# --- entities and time -----------------------------------------------------------------------------


def test_entity_overlap_reports_exactly_the_planted_entities():
    rng = np.random.default_rng(5)
    frame = independent_rows(3000)
    frame["customer"] = np.array([f"C{i:04d}" for i in rng.integers(0, 500, len(frame))], dtype=object)
    splits = GroupSplit(entity_column="customer", seed=1).assign(frame).to_numpy().copy()
    assert EntityOverlap().check(LeakageInput(frame=frame, splits=splits, entity_column="customer")) == []
    planted = []
    for customer in pd.unique(frame.loc[splits == "train", "customer"])[:3]:
        row = np.flatnonzero((frame["customer"] == customer).to_numpy())[0]
        splits[row] = "test"
        planted.append(customer)
    f = EntityOverlap().check(LeakageInput(frame=frame, splits=splits, entity_column="customer"))[0]
    assert set(f.evidence["entities"]) == set(planted)
    assert f.evidence["n_entities"] == 3 and f.evidence["split_pairs"] == {"train/test": 3}
    assert "group" in f.fix


def test_temporal_order_reports_exactly_the_planted_late_training_rows():
    frame = independent_rows(2000)
    splits = TimeSplit(time_column="ts").assign(frame).to_numpy().copy()
    late = np.flatnonzero(splits == "test")[:4]
    splits[late] = "train"
    f = TemporalOrder().check(LeakageInput(frame=frame, splits=splits, time_column="ts"))[0]
    assert planted_rows(f) == set(late)
    assert f.evidence["late_rows_by_split"] == {"train": 4}


def test_temporal_order_flags_a_random_split_of_time_series():
    frame = independent_rows(1000)
    f = TemporalOrder().check(LeakageInput(frame=frame, splits=random_split(frame), time_column="ts"))
    assert f and f[0].evidence["n_rows"] > 100


def test_feature_availability_reports_exactly_the_late_features_and_rows():
    frame = independent_rows(1000)
    frame["settled_at"] = frame["ts"] - pd.Timedelta("1h")
    planted = [10, 20, 30]
    frame.loc[planted, "settled_at"] = frame.loc[planted, "ts"] + pd.Timedelta("3D")
    catalogue = (FeatureTiming(name="x0", availability_lag="2d"), FeatureTiming(name="x1", availability_lag="0s"),
                 FeatureTiming(name="x2", available_at="settled_at"),
                 FeatureTiming(name="not_there", availability_lag="1d"))
    splits = TimeSplit(time_column="ts").assign(frame).to_numpy().copy()
    data = LeakageInput(frame=frame, splits=splits, time_column="ts", catalogue=catalogue)
    f = FeatureAvailability().check(data)[0]
    assert f.evidence["columns"] == ["x0", "x2"]
    assert f.evidence["n_rows"] == {"x0": 1000, "x2": 3}
    assert set(f.evidence["rows"]["x2"]) == set(planted)


# --- target ------------------------------------------------------------------------------------


def test_target_leakage_reports_exactly_the_planted_features():
    rng = np.random.default_rng(2)
    frame = independent_rows(5000)
    y = frame["y"].to_numpy()
    frame["leak_num"] = y * 2.0 + rng.normal(0, 0.05, len(frame))
    frame.loc[::9, "leak_num"] = np.nan  # missing values are skipped, not scored
    frame["leak_cat"] = np.where(y == 1, "churned", "active")
    frame["row_id"] = [f"r{i}" for i in range(len(frame))]  # unique: must not look predictive
    data = LeakageInput(frame=frame, splits=random_split(frame), label="y")
    f = TargetLeakage().check(data)[0]
    assert set(f.evidence["columns"]) == {"leak_num", "leak_cat"}
    assert f.evidence["metric"] == "roc_auc" and all(s >= 0.98 for s in f.evidence["scores"].values())


def test_target_leakage_for_a_numeric_label_uses_r2():
    rng = np.random.default_rng(3)
    frame = independent_rows(3000)
    frame["amount"] = rng.normal(0, 1, len(frame))
    frame["leak"] = 3 * frame["amount"] + rng.normal(0, 0.05, len(frame))
    f = TargetLeakage().check(LeakageInput(frame=frame.drop(columns=["y"]), splits=random_split(frame), label="amount"))
    assert f[0].evidence["columns"] == ["leak"] and f[0].evidence["metric"] == "r2"


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 1000).astype(float)
    y = rng.random(1000) < 0.3 + 0.1 * x
    assert auc_binary(x, y) == pytest.approx(roc_auc_score(y, x))
    x[::7] = np.nan
    ok = ~np.isnan(x)
    assert auc_binary(x, y) == pytest.approx(roc_auc_score(y[ok], x[ok]))


def test_missingness_leakage_reports_the_after_the_fact_field():
    rng = np.random.default_rng(4)
    frame = independent_rows(3000)
    frame["cancel_reason"] = np.where(frame["y"] == 1, rng.choice(["price", "service"], len(frame)), None)
    found = by_check(run_checks(LeakageInput(frame=frame, splits=random_split(frame), label="y"), {}))
    assert set(found) == {"missingness_leakage", "target_leakage"}  # its value predicts the label too
    assert found["missingness_leakage"].evidence["columns"] == ["cancel_reason"]
    assert found["target_leakage"].evidence["columns"] == ["cancel_reason"]
    data = LeakageInput(frame=frame, splits=random_split(frame), label="y")
    assert MissingnessLeakage(threshold=0.99).check(data)[0].evidence["columns"] == ["cancel_reason"]
    frame.loc[frame.index[:40], "cancel_reason"] = "late"  # no longer perfect
    assert MissingnessLeakage(threshold=0.999).check(LeakageInput(frame=frame, splits=data.splits, label="y")) == []


def test_label_shift_reports_a_shifted_test_split_and_missing_labels():
    frame = independent_rows(3000)
    splits = random_split(frame)
    ones_in_test = np.flatnonzero((splits == "test") & (frame["y"] == 0).to_numpy())
    frame.loc[ones_in_test[: len(ones_in_test) // 2], "y"] = 1
    frame["y"] = frame["y"].astype("float64")
    frame.loc[[0, 1], "y"] = np.nan
    findings = LabelShift().check(LeakageInput(frame=frame, splits=splits, label="y"))
    messages = " | ".join(f.message for f in findings)
    assert "missing in 2 rows" in messages
    shift = next(f for f in findings if "distance" in f.evidence)
    assert {k for k, v in shift.evidence["distance"].items() if v > 0.1} == {"test"}


# --- policy ---------------------------------------------------------------------------------


def _duplicated():
    frame = independent_rows(600)
    splits = random_split(frame)
    frame.iloc[np.flatnonzero(splits == "test")[:2]] = frame.iloc[np.flatnonzero(splits == "train")[:2]].to_numpy()
    return LeakageInput(frame=frame.astype(independent_rows(1).dtypes.to_dict()), splits=splits)


def test_policy_sets_severity_or_turns_checks_off():
    data = _duplicated()
    assert [f.severity for f in run_checks(data, {})] == ["error"]
    assert [f.severity for f in run_checks(data, {"exact_duplicates": "warn"})] == ["warning"]
    assert run_checks(data, {"exact_duplicates": "off"}) == []
    assert run_checks(data, {"exact_duplicates": {"action": "warn", "sample": 1}})[0].evidence["rows"].__len__() == 1


def test_policy_errors_name_the_key(host):
    data = _duplicated()
    with pytest.raises(ConfigError,
                       match=r"policy.leakage: unknown leakage check 'exact_duplicate'; "
                             r"did you mean 'exact_duplicates'"):
        run_checks(data, {"exact_duplicate": "fail"}, host=host)
    with pytest.raises(ConfigError,
                       match=r"policy.leakage.near_duplicates: action 'loud' is not one of fail, warn, off"):
        run_checks(data, {"near_duplicates": "loud"}, host=host)
    with pytest.raises(ConfigError, match=r"policy.leakage.near_duplicates.params: .*tolerence"):
        run_checks(data, {"near_duplicates": {"tolerence": 0.1}}, host=host)


def test_checks_are_registered_backends(host):
    assert set(host.backends.names("leakage")) >= {
        "exact_duplicates", "near_duplicates", "entity_overlap", "temporal_order", "feature_availability",
        "target_leakage", "missingness_leakage", "label_shift"}


# --- the CLI on files made elsewhere ---------------------------------------------------------


def test_leakage_cli_with_catalogue_policy_and_parquet(tmp_path, tether_cli):
    import json

    frame = independent_rows(1500)
    frame["refund"] = frame["x1"] * 3
    frame["split"] = TimeSplit(time_column="ts").assign(frame).to_numpy()
    frame.to_parquet(tmp_path / "scored.parquet")
    (tmp_path / "features.yaml").write_text("features:\n  - {name: refund, availability_lag: 2d}\n")
    result = tether_cli("leakage", "scored.parquet", "--split-column", "split", "--time-column", "ts",
                        "--features-from", "features.yaml", "--json")
    assert result.exit_code == 1, result
    report = json.loads(result.stdout)
    found = [(f["check"], f["evidence"]["columns"]) for f in report["findings"]]
    assert found == [("feature_availability", ["refund"])]
    assert report["summary"]["rows"] == {"train": 1050, "validation": 225, "test": 225}
    (tmp_path / "chain.yaml").write_text("version: 1\npolicy:\n  leakage:\n    feature_availability: warn\n")
    relaxed = tether_cli("leakage", "scored.parquet", "--split-column", "split", "--time-column", "ts",
                         "--features-from", "features.yaml", "--policy", "chain.yaml")
    assert relaxed.exit_code == 0, relaxed
    assert "[warn] feature_availability" in relaxed.stdout


def test_leakage_cli_bad_input_is_one_line_exit_2(tmp_path, tether_cli):
    frame = independent_rows(20)
    frame["split"] = ["train"] * 15 + ["test"] * 5
    frame["ts"] = frame["ts"].astype(str)
    frame.loc[3, "ts"] = "not a time"
    frame.to_csv(tmp_path / "d.csv", index=False)
    cases = [
        (("missing.csv", "--split-column", "split"), "file 'missing.csv' not found"),
        (("d.csv", "--split-column", "split", "--time-column", "ts"), "time column 'ts' has 1 unparseable values"),
        (("d.csv", "--split-column", "city"), "split column 'city' has values"),
        (("d.csv", "--split-column", "split", "--entity-column", "note"), "entity column 'note' has"),
    ]
    for args, expected in cases:
        result = tether_cli("leakage", *args)
        assert result.exit_code == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tether: error: ") and expected in lines[0], result


@pytest.mark.parametrize("coarse", [4, 1000])
def test_near_duplicates_never_miss_a_pair_within_tolerance(coarse):
    # a tiny grid (coarse=4) puts many values near cell edges: the neighbour lookups must find them all
    rng = np.random.default_rng(coarse)
    n, planted, tol = 4000, 400, 1e-4
    frame = pd.DataFrame({"a": rng.lognormal(0, 3, n) * rng.choice([-1, 1], n), "b": rng.normal(0, 50, n),
                          "c": rng.integers(-5, 5, n).astype("float64")})
    frame.loc[rng.random(n) < 0.05, "b"] = np.nan
    splits = np.array(["train"] * (n - planted) + ["test"] * planted, dtype=object)
    src = rng.choice(n - planted, planted, replace=False)
    copy = frame.iloc[src].to_numpy() * (1 + rng.uniform(-0.99 * tol, 0.99 * tol, (planted, 3)))
    frame.iloc[n - planted:] = copy
    found = NearDuplicates(tolerance=tol, coarse=coarse).check(LeakageInput(frame=frame, splits=splits))[0]
    assert found.evidence["n_pairs"] == planted
    assert found.evidence["n_rows"] == 2 * planted


def test_near_duplicates_on_low_cardinality_data_count_pairs_of_identical_rows():
    # many identical rows per split: collapsed before the join, counted back in the evidence
    rng = np.random.default_rng(6)
    n = 20000
    frame = pd.DataFrame({"flag": rng.integers(0, 2, n), "tier": rng.choice(["Gold", "silver"], n)})
    frame["amount"] = np.where(frame["flag"] == 1, 10.0, 20.0)
    splits = random_split(frame)
    assert NearDuplicates().check(LeakageInput(frame=frame, splits=splits)) == []  # exact copies only
    frame.loc[0, "amount"] = 10.0 * (1 + 1e-7) if frame.loc[0, "flag"] == 1 else 20.0 * (1 + 1e-7)
    found = NearDuplicates().check(LeakageInput(frame=frame, splits=splits))[0]
    same = ((frame["flag"] == frame.loc[0, "flag"]) & (frame["tier"] == frame.loc[0, "tier"])).to_numpy()
    others = np.flatnonzero(same & (splits != splits[0]))
    assert found.evidence["n_pairs"] == len(others)
    assert found.evidence["n_rows"] == len(others) + 1
    assert found.evidence["truncated"] is False


# --- near duplicates around zero (absolute tolerance) ------------------------------------------


def test_near_duplicates_find_copies_whose_zeros_became_round_off():
    # a 0 recomputed as 3e-7 (or -2e-7) is near it under the default atol; with atol 0 only 0 equals 0
    frame = independent_rows(2000)
    frame["refund"] = 0.0
    frame["delta"] = np.where(np.arange(len(frame)) % 2, 0.0, 1e-3)
    splits = random_split(frame)
    train, test_rows = np.flatnonzero(splits == "train")[:4], np.flatnonzero(splits == "test")[:4]
    frame.iloc[test_rows] = frame.iloc[train].to_numpy()
    frame = frame.astype(independent_rows(1).dtypes.to_dict())
    frame.loc[test_rows, "refund"] = [3e-7, -2e-7, 9e-7, 0.0]
    frame.loc[[train[3], test_rows[3]], "delta"] = [0.0, 5e-7]
    data = LeakageInput(frame=frame, splits=splits)
    found = NearDuplicates().check(data)[0]
    assert found.evidence["n_pairs"] == 4 and planted_rows(found) == set(train) | set(test_rows)
    assert found.evidence["atol"] == 1e-6
    assert NearDuplicates(atol=0).check(LeakageInput(frame=frame, splits=splits)) == []
    assert NearDuplicates(atol=1e-7).check(LeakageInput(frame=frame, splits=splits)) == []


@pytest.mark.parametrize("atol", [1e-6, 1e-3])
def test_near_duplicates_with_atol_never_miss_a_pair_around_zero(atol):
    # values spread around zero, both signs: every planted pair within atol + tolerance is found
    rng = np.random.default_rng(int(1 / atol))
    n, planted, tol = 4000, 400, 1e-4
    frame = pd.DataFrame({"a": rng.normal(0, 5 * atol, n), "b": rng.lognormal(0, 3, n) * rng.choice([-1, 1], n),
                          "c": np.where(rng.random(n) < 0.5, 0.0, rng.normal(0, atol, n))})
    splits = np.array(["train"] * (n - planted) + ["test"] * planted, dtype=object)
    src = rng.choice(n - planted, planted, replace=False)
    orig = frame.iloc[src].to_numpy()
    bound = 0.99 * (atol + tol * np.abs(orig))  # |noise| <= atol + tol*|a| <= atol + tol*max(|a|, |b|)
    frame.iloc[n - planted:] = orig + rng.uniform(-1, 1, orig.shape) * bound
    found = NearDuplicates(tolerance=tol, atol=atol, coarse=4, sample=10**6).check(
        LeakageInput(frame=frame, splits=splits))[0]
    pairs = {(p[0], p[2]) for p in found.evidence["pairs"]}
    assert {(int(s), n - planted + i) for i, s in enumerate(src)} <= pairs


# --- results stay the same (guards the memory work) ------------------------------------------------


def audited_rows(n: int = 1500) -> pd.DataFrame:
    """Independent rows with an entity, a split column, an exact and a near copy across splits."""
    rng = np.random.default_rng(11)
    frame = independent_rows(n, seed=11)
    frame["customer"] = np.array([f"C{i:03d}" for i in rng.integers(0, 300, n)], dtype=object)
    frame["zero"] = 0.0
    frame.iloc[10] = frame.iloc[11].to_numpy()
    frame.iloc[20] = frame.iloc[22].to_numpy()
    frame = frame.astype({**independent_rows(1).dtypes.to_dict(), "zero": "float64"})
    frame.loc[20, ["x1", "zero"]] = [frame.loc[22, "x1"] * (1 + 1e-8), 3e-7]
    frame.loc[20, "city"] = str(frame.loc[22, "city"]).upper()
    frame["split"] = np.where(np.arange(n) % 5 == 0, "test", np.where(np.arange(n) % 5 == 1, "valid", "train"))
    return frame


def test_leakage_cli_findings_are_unchanged(tmp_path, tether_cli):
    import hashlib
    import json

    audited_rows().to_csv(tmp_path / "audit.csv", index=False)
    result = tether_cli("leakage", "audit.csv", "--split-column", "split", "--entity-column", "customer",
                        "--time-column", "ts", "--label", "y", "--json")
    assert result.exit_code == 1, result
    report = json.loads(result.stdout)
    digest = hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:16]
    assert [f["check"] for f in report["findings"]] == ["entity_overlap", "exact_duplicates", "near_duplicates",
                                                        "temporal_order"]
    assert digest == "4d616852418f18ea"  # recorded before the memory work


# --- bad input and options before anything runs ----------------------------------------------------


def one_line_error(result, expected: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result
    assert len(lines) == 1 and lines[0].startswith("tether: error: ") and expected in lines[0], result


def test_bad_check_options_are_config_errors_naming_the_key(host):
    data = _duplicated()
    cases = [({"near_duplicates": {"coarse": 0}}, "near_duplicates.params.coarse: must be at least 1, got 0"),
             ({"near_duplicates": {"max_pairs": -1}}, "near_duplicates.params.max_pairs: must be at least 1, got -1"),
             ({"near_duplicates": {"atol": -1e-9}}, "near_duplicates.params.atol: must be at least 0"),
             ({"near_duplicates": {"tolerance": 0}}, "near_duplicates.params.tolerance: must be in (0, 0.5)"),
             ({"near_duplicates": {"max_expand": -2}}, "near_duplicates.params.max_expand: must be at least 0"),
             ({"exact_duplicates": {"sample": 0}}, "exact_duplicates.params.sample: must be at least 1, got 0"),
             ({"entity_overlap": {"sample": -5}}, "entity_overlap.params.sample: must be at least 1"),
             ({"temporal_order": {"sample": 0}}, "temporal_order.params.sample: must be at least 1"),
             ({"feature_availability": {"sample": 0}}, "feature_availability.params.sample: must be at least 1"),
             ({"target_leakage": {"threshold": 1.5}}, "target_leakage.params.threshold: must be in [0, 1]"),
             ({"target_leakage": {"r2_threshold": -0.1}}, "target_leakage.params.r2_threshold: must be in [0, 1]"),
             ({"target_leakage": {"threads": -1}}, "target_leakage.params.threads: must be at least 0"),
             ({"missingness_leakage": {"threshold": 2}}, "missingness_leakage.params.threshold: must be in [0, 1]"),
             ({"label_shift": {"max_distance": -0.5}}, "label_shift.params.max_distance: must be in [0, 1]")]
    for policy, expected in cases:
        with pytest.raises(ConfigError, match="^" + re.escape("policy.leakage." + expected)):
            run_checks(data, policy, host=host)
        with pytest.raises(ConfigError, match="^" + re.escape("policy.leakage." + expected)):
            run_checks(data, policy)  # built without a plugin host: the same message


def test_leakage_cli_on_no_rows_says_there_is_nothing_to_check(tmp_path, tether_cli):
    (tmp_path / "empty.csv").write_text("x,split\n")
    independent_rows(10).assign(split="train").iloc[:0].to_parquet(tmp_path / "empty.parquet")
    for name in ("empty.csv", "empty.parquet"):
        one_line_error(tether_cli("leakage", name, "--split-column", "split"),
                       "holds no rows; there is nothing to check")
    frame = independent_rows(30).assign(split="excluded")
    frame.to_csv(tmp_path / "excluded.csv", index=False)
    one_line_error(tether_cli("leakage", "excluded.csv", "--split-column", "split"),
                   "no rows are in train, validation or test (30 excluded); there is nothing to check")


def test_leakage_cli_missing_columns_suggest_the_nearest(tmp_path, tether_cli):
    frame = independent_rows(30).assign(split="train", customer="c")
    frame.to_csv(tmp_path / "d.csv", index=False)
    cases = [(("--time-column", "tss"), "leakage: time column 'tss' is not in the data; did you mean 'ts'?"),
             (("--entity-column", "custmer"), "leakage: entity column 'custmer' is not in the data; "
                                              "did you mean 'customer'?"),
             (("--label", "yy"), "leakage: label column 'yy' is not in the data; did you mean 'y'?"),
             (("--ignore-column", "nots"), "leakage: ignored column 'nots' is not in the data; "
                                           "did you mean 'note'?")]
    for args, expected in cases:
        one_line_error(tether_cli("leakage", "d.csv", "--split-column", "split", *args), expected)


def test_leakage_cli_bad_policy_options_are_one_line_exit_2(tmp_path, tether_cli):
    frame = independent_rows(30).assign(split="train")
    frame.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "p.yaml").write_text("near_duplicates: {coarse: 0}\n")
    one_line_error(tether_cli("leakage", "d.csv", "--split-column", "split", "--policy", "p.yaml"),
                   "policy.leakage.near_duplicates.params.coarse: must be at least 1, got 0")


def test_leakage_cli_writes_html_into_a_new_folder(tmp_path, tether_cli):
    frame = independent_rows(200)
    frame["split"] = np.where(np.arange(200) % 4 == 0, "test", "train")
    frame.to_csv(tmp_path / "d.csv", index=False)
    result = tether_cli("leakage", "d.csv", "--split-column", "split", "--html", "reports/new/leakage.html")
    assert result.exit_code == 0, result
    assert "Leakage audit of d.csv" in (tmp_path / "reports" / "new" / "leakage.html").read_text()


def test_leakage_cli_reads_files_like_every_command(tmp_path, tether_cli):
    import json

    # the shared reader: NA/None/empty are missing in text columns too, and .tsv files are read
    rows = ["customer\tsplit\tx", "a\ttrain\t1", "None\ttrain\t2", "b\ttest\t3", "NA\ttest\t4"]
    (tmp_path / "d.tsv").write_text("\n".join(rows) + "\n")
    one_line_error(tether_cli("leakage", "d.tsv", "--split-column", "split", "--entity-column", "customer"),
                   "entity column 'customer' has 2 null values")
    (tmp_path / "l.csv").write_text("y,split,x\na,train,1\n,train,2\nNone,test,3\nb,test,4\n")
    result = tether_cli("leakage", "l.csv", "--split-column", "split", "--label", "y", "--json")
    missing = [f for f in json.loads(result.stdout)["findings"] if f["message"].startswith("label 'y' is missing")]
    assert missing and missing[0]["evidence"]["rows"] == [1, 2], result


# --- memory: 5 million rows x 20 columns audited within 1.5 GiB (benchmarks/bench_split_memory.py) ------


def _many_rows(n: int = 2_000_000):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"customer": rng.integers(0, n // 10, n), "x": rng.normal(size=n),
                          "y": (rng.random(n) < 0.3).astype("int64")})
    data = LeakageInput(frame=frame, splits=np.array(["train", "validation", "test"], dtype=object)[
        rng.integers(0, 3, n)], entity_column="customer", label="y")
    assert len(data.codes) == len(data.compared_fingerprints) == n  # shared by every check: computed first
    return data


@pytest.mark.parametrize(("check", "columns"), [(EntityOverlap(), 7), (ExactDuplicates(), 5.5),
                                                (TargetLeakage(threads=1), 6)],
                         ids=["entity_overlap", "exact_duplicates", "target_leakage"])
def test_checks_on_many_rows_stay_within_a_few_columns_of_memory(check, columns):
    # peaks were 7.5 (np.isin sorting every row), 7.3 (every live row sorted with its split and
    # position) and 7.4 (full-size label codes and int64 positions kept while scoring) columns
    data = _many_rows()
    findings, peak = traced_peak(lambda: check.check(data))
    assert peak < columns * 8 * len(data.frame), peak / (8 * len(data.frame))
    if check.name == "entity_overlap":
        in_splits = pd.Series(data.codes).groupby(data.frame["customer"].to_numpy()).nunique()
        assert findings[0].evidence["n_entities"] == int((in_splits > 1).sum())


def test_audit_table_to_frame_matches_a_whole_table_conversion():
    import pyarrow as pa
    from tether.workspace import table_to_frame

    def table():
        return pa.table({"i": pa.array([1, None, 3]), "s": ["a", None, "c"], "b": [True, None, False],
                         "ts": pa.array([0, 1, None], pa.timestamp("us", tz="UTC")), "f": [1.5, None, 2.0],
                         "d": pa.array([1, 2, 3], pa.date32()), "c": pa.array(["x", "y", "x"]).dictionary_encode()})

    pd.testing.assert_frame_equal(table_to_frame([table()]), table().to_pandas(), check_exact=True)
    with_index = pa.Table.from_pandas(pd.DataFrame({"a": [1, 2]}, index=pd.Index([5, 7], name="k")))
    expected = with_index.to_pandas()
    pd.testing.assert_frame_equal(table_to_frame([with_index]), expected)


def test_near_duplicates_on_many_rows_stays_within_a_few_columns_of_memory():
    # was 13.4 columns: whole-column hash temporaries, a timestamp column gathered for every row
    # and held through the join, int64 positions and group ids
    n = 2_000_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n),
                          "ts": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**12, n),
                                                                                       unit="us"),
                          "city": rng.choice(np.array(["Oslo", "Lima", "Pune"], dtype=object), n)})
    splits = np.array(["train", "validation", "test"], dtype=object)[rng.integers(0, 3, n)]
    train, test = np.flatnonzero(splits == "train")[:3], np.flatnonzero(splits == "test")[:3]
    frame.loc[test, ["x", "z", "ts"]] = frame.loc[train, ["x", "z", "ts"]].to_numpy()
    frame.loc[test, "x"] += 1e-9
    frame.loc[test, "city"] = frame.loc[train, "city"].str.upper().to_numpy()
    data = LeakageInput(frame=frame, splits=splits)
    assert len(data.codes) == len(data.compared_fingerprints) == n  # shared by every check: computed first
    findings, peak = traced_peak(lambda: NearDuplicates().check(data))
    assert peak < 11 * 8 * n, peak / (8 * n)
    assert sorted(findings[0].evidence["rows"]) == sorted([*train.tolist(), *test.tolist()])
