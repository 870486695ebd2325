"""Features: catalogue and definitions, the featurize stage (train-only fitting, user
transforms, validation findings, lineage), availability rules, and the skew check."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chains import customers_split_by_time
from tether.config import load_chain
from tether.errors import ConfigError, DataError, StageError
from tether.plugins.features.calculations import (
    build_training_set,
    check_point_in_time,
    compute_feature,
)
from tether.plugins.features.catalogue import (
    apply_definitions,
    define,
    load_catalogue,
    models_using,
)
from tether.plugins.features.featurizer import fit_transform_splits, load_transform
from tether.plugins.features.skew import skew_check
from tether.plugins.features.validation import validate_features
from tether.runner import run_chain

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn"

HELPERS = '''
import numpy as np
import pandas as pd

FITTED_ON = []


class RecordingScaler:
    """A user transform that remembers which rows it was fitted on."""

    def fit(self, X):
        FITTED_ON.append(sorted(X.index.tolist()))
        self.mean_ = X.mean()
        return self

    def transform(self, X):
        return (X - self.mean_).to_numpy()

    def get_feature_names_out(self):
        return [f"centered_{c}" for c in self.mean_.index]


def recording():
    return RecordingScaler()


def prefitted():
    from sklearn.preprocessing import StandardScaler
    from churn.data import customers
    return StandardScaler().fit(customers(rows=500)[["tenure_months"]])  # fitted on every row


def rolling_sum(frame, window):
    out = pd.Series(np.nan, index=frame.index)
    for _, group in frame.sort_values("ts").groupby("customer_id"):
        out.loc[group.index] = group.rolling(window, on="ts")["amount"].sum().to_numpy()
    return out


def spend_7d(frame):
    return rolling_sum(frame, "7D")


def spend_3d(frame):
    return rolling_sum(frame, "3D")


def spend_7d_sorted(frame):
    """The same values, returned sorted by value: aligned with the source by label only."""
    return rolling_sum(frame, "7D").sort_values()


def spend_day(frame):
    """Daily spend stamped at the START of the day it sums: it includes that whole day."""
    day = frame["ts"].dt.floor("D")
    out = frame.assign(ts=day).groupby(["customer_id", "ts"], as_index=False)["amount"].sum()
    return out.rename(columns={"amount": "spend_day"})


class TwoLines:
    def fit(self, X):
        raise ValueError("Cannot use this strategy with non-numeric data:\\ncould not convert string to float: 'x'")

    def transform(self, X):
        return X


def two_lines():
    return TwoLines()


def broken(frame):
    raise ValueError("column 'amount' has the wrong unit")
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copytree(EXAMPLE / "churn", tmp_path / "churn")
    shutil.copy(EXAMPLE / "features.yaml", tmp_path / "features.yaml")
    (tmp_path / "fe_helpers.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("fe_helpers", None)
    importlib.invalidate_caches()
    return tmp_path


def events(seed: int = 0, customers: int = 12, per_customer: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = customers * per_customer
    frame = pd.DataFrame({
        "customer_id": np.repeat(np.arange(customers), per_customer),
        "ts": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 60 * 86400, n), unit="s"),
        "amount": rng.gamma(2.0, 20.0, n).round(2),
    })
    frame.loc[rng.random(n) < 0.1, "amount"] = np.nan
    return frame.drop_duplicates(["customer_id", "ts"]).sample(frac=1.0, random_state=seed).reset_index(drop=True)


# --- catalogue and definitions -------------------------------------------------------------


def test_catalogue_errors_name_the_key_path(tmp_path):
    path = tmp_path / "features.yaml"
    path.write_text("features:\n  - {name: spend, availabilty_lag: 2d}\n")
    with pytest.raises(ConfigError,
                       match=r"features\[0\]: unknown key 'availabilty_lag'; did you mean 'availability_lag'"):
        load_catalogue(path)
    path.write_text("features:\n  - {name: spend, availability_lag: soon}\n")
    with pytest.raises(ConfigError, match=r"features\[0\] \(spend\).availability_lag: .*'soon' is not a duration"):
        load_catalogue(path)
    path.write_text("features:\n  - {name: spend, valid_range: [5, 1]}\n")
    with pytest.raises(ConfigError, match=r"valid_range: low 5 is above high 1"):
        load_catalogue(path)
    path.write_text("features:\n  - {name: spend}\n  - {name: spend}\n")
    with pytest.raises(ConfigError, match="defined twice"):
        load_catalogue(path)


def test_definitions_are_versioned_only_when_they_change(workspace, project):
    loaded = load_catalogue(project / "features.yaml")
    first = apply_definitions(workspace.store, loaded)
    assert {status for _, status in first} == {"created"} and first[0][0].id == "feature-tenure_months-1"
    assert {status for _, status in apply_definitions(workspace.store, loaded)} == {"unchanged"}
    changed = [d if d.name != "total_charges" else define("total_charges", entity="customer_id",
                                                          availability_lag="1d", timestamp="event_ts")
               for d in loaded]
    results = {d.name: (d.version, s) for d, s in apply_definitions(workspace.store, changed)}
    assert results["total_charges"] == (2, "updated") and results["tenure_months"] == (1, "unchanged")
    stored = workspace.store.get("feature-total_charges-2", kind="feature")
    assert stored.availability_lag == "1d" and stored.lag == pd.Timedelta("1D")


# --- calculations and the availability rules -----------------------------------------------


def test_calculations_python_and_sql_and_their_errors(project):
    frame = events()
    python = compute_feature(define("spend_7d", entity="customer_id", timestamp="ts",
                                    calculation="fe_helpers:spend_7d"), frame)
    sql = compute_feature(define("spend_7d", entity="customer_id", timestamp="ts", calculation=(
        "sum(amount) OVER (PARTITION BY customer_id ORDER BY ts "
        "RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW)")), frame)
    merged = python.merge(sql, on=["customer_id", "ts"], suffixes=("_py", "_sql"))
    assert len(merged) == len(frame)
    np.testing.assert_allclose(merged["spend_7d_py"].fillna(0), merged["spend_7d_sql"].fillna(0), rtol=1e-9)
    with pytest.raises(DataError,
                       match=r"feature 'bad': calculation fe_helpers:broken raised ValueError: column 'amount'"):
        compute_feature(define("bad", entity="customer_id", timestamp="ts", calculation="fe_helpers:broken"), frame)
    with pytest.raises(DataError, match="feature 'bad': SQL calculation failed: .*amout"):
        compute_feature(define("bad", entity="customer_id", timestamp="ts", calculation="amout * 2"), frame)
    with pytest.raises(ConfigError, match="feature 'bad': calculation: cannot import 'no_such_module'"):
        compute_feature(define("bad", entity="customer_id", timestamp="ts", calculation="no_such_module:f"), frame)


def test_a_sql_calculation_is_exactly_one_select_and_runs_nothing_else(project, monkeypatch):
    monkeypatch.chdir(project)
    frame = events()
    written = project / "out.csv"
    for calculation in (
        "SELECT customer_id, ts, amount AS x FROM src; COPY (SELECT 1) TO 'out.csv'",
        "amount) AS x FROM src; COPY (SELECT 1 AS y) TO 'out.csv'; SELECT (1",  # an expression breaking out
        "COPY (SELECT customer_id, ts, amount AS x FROM src) TO 'out.csv'",
    ):
        with pytest.raises(ConfigError, match=r"feature 'x': calculation: expected one SELECT statement .*got "
                                              r"(2 statements|3 statements|a COPY statement)"):
            compute_feature(define("x", entity="customer_id", timestamp="ts", calculation=calculation), frame)
        assert not written.exists()
    with pytest.raises(ConfigError, match=r"feature 'x': calculation is not valid SQL: Parser Error: syntax error"):
        compute_feature(define("x", entity="customer_id", timestamp="ts", calculation="amount * * 2"), frame)
    with pytest.raises(DataError, match=r"feature 'x': SQL calculation failed: .*(disabled|read_csv)"):
        compute_feature(define("x", entity="customer_id", timestamp="ts",
                               calculation="(SELECT count(*) FROM read_csv('out.csv'))"), frame)
    trailing = compute_feature(define("x", entity="customer_id", timestamp="ts",
                                      calculation="SELECT customer_id, ts, amount AS x FROM src;"), frame)
    assert len(trailing) == len(frame)


def test_future_information_is_caught_by_the_availability_rules(project):
    """A daily spend stamped at the start of the day it sums includes the label day."""
    frame = events()
    leaky = define("spend_day", entity="customer_id", timestamp="ts", calculation="fe_helpers:spend_day")
    findings = check_point_in_time(leaky, frame, cutoffs=4)
    assert len(findings) == 1 and findings[0].check == "feature.point_in_time"
    assert "uses information from after its availability time" in findings[0].message
    assert findings[0].evidence["differing"] > 0
    declared = define("spend_day", entity="customer_id", timestamp="ts", calculation="fe_helpers:spend_day",
                      availability_lag="1d")
    assert check_point_in_time(declared, frame, cutoffs=4) == []
    assert check_point_in_time(define("spend_7d", entity="customer_id", timestamp="ts",
                                      calculation="fe_helpers:spend_7d"), frame, cutoffs=4) == []

    # the label is "spent on the prediction day"; the training set must not know that day yet
    days = frame.assign(day=frame["ts"].dt.floor("D")).groupby(["customer_id", "day"], as_index=False)["amount"].sum()
    labels = days.rename(columns={"day": "predict_at"}).assign(label=lambda d: (d["amount"] > 0).astype(int))
    naive = build_training_set(labels, [leaky], frame, prediction_time="predict_at")
    honest = build_training_set(labels, [declared], frame, prediction_time="predict_at")
    same_day = np.isclose(naive["spend_day"], labels["amount"])
    assert same_day.mean() > 0.9  # without the lag, the feature is the label day's own spend
    previous_day = labels.groupby("customer_id")["amount"].shift(1)  # the latest complete day before
    pd.testing.assert_series_equal(honest["spend_day"], previous_day, check_names=False)


# --- featurize: train-only fitting, user transforms, validation, lineage -------------------

CHAIN = """\
version: 1
name: feats
stages:
""" + customers_split_by_time(2000) + """\
  - stage: featurize
    params: FEATURIZE
  - {step: "churn.train:fit"}
  - stage: register
    params: {model_name: churn}
"""


def chain(project, host, featurize: str, extra: str = ""):
    path = project / "chain.yaml"
    path.write_text(CHAIN.replace("FEATURIZE", featurize) + extra)
    return load_chain(path, host)


def test_user_transform_is_fitted_on_training_rows_only(project, host):
    import fe_helpers

    spec = "{label: churned, transform: 'fe_helpers:recording', columns: [tenure_months, monthly_charges]}"
    deploy = "\n  - stage: deploy\n    plugin: batch\n    params: {output: predictions}\n"
    _run, outputs = run_chain(chain(project, host, spec, deploy), host)
    features = outputs["featurize"]
    split = outputs["split"]
    from tether.workspace import Workspace

    ws = Workspace.for_chain(load_chain(project / "chain.yaml", host), host)
    assignment = ws.read_frame(split.assignment, columns=["split"])["split"]
    train_rows = sorted(np.flatnonzero(assignment.to_numpy() == "train").tolist())
    assert fe_helpers.FITTED_ON == [train_rows]  # fitted once, on exactly the training rows
    assert len(train_rows) < len(assignment)
    assert features.feature_names == ("centered_tenure_months", "centered_monthly_charges")
    assert features.input_columns == ("tenure_months", "monthly_charges")
    assert features.transform_class == "fe_helpers.RecordingScaler"
    transform = load_transform(ws, "mv-churn-1")  # the artifact scoring and serving load
    assert list(transform.feature_names_in_) == ["tenure_months", "monthly_charges"]
    assert fe_helpers.FITTED_ON == [train_rows]  # loading and scoring never refit
    # batch scoring used that same artifact: recompute its predictions from it
    scored = pd.read_parquet(outputs["deploy"].location)
    frame = ws.read_snapshot(outputs["customers"])
    model = ws.load_object(outputs["fit"].artifact)
    X = pd.DataFrame(transform.transform(frame), columns=list(features.feature_names))
    np.testing.assert_allclose(scored["score"], model.predict_proba(X)[:, 1])
    ws.close()


def test_fitting_on_all_rows_is_impossible_through_the_stage_api(project, host):
    with pytest.raises(ConfigError, match="unknown parameter 'fit_on'"):
        chain(project, host, "{label: churned, numeric: [tenure_months], fit_on: all}")
    with pytest.raises(ConfigError, match="already fitted StandardScaler; return it unfitted"):
        run_chain(chain(project, host, "{label: churned, transform: 'fe_helpers:prefitted', columns: [tenure_months]}"),
                  host)
    frame = pd.DataFrame({"x": np.arange(10.0), "y": [0, 1] * 5})
    from tether.plugins.features.featurizer import SklearnFeaturizer

    featurizer = SklearnFeaturizer(numeric=("x",), label="y")
    transform, _, _matrices = fit_transform_splits(featurizer, frame, np.array(["train"] * 4 + ["test"] * 6))
    assert transform.named_transformers_["num"][-1].mean_[0] == pytest.approx(1.5)  # rows 0..3 only
    with pytest.raises(DataError, match="no training rows"):
        fit_transform_splits(featurizer, frame, np.array(["test"] * 10))
    with pytest.raises(DataError, match="assigns 9 rows but the snapshot has 10"):
        fit_transform_splits(featurizer, frame, np.array(["train"] * 9))


def test_transform_failures_are_one_full_line(project, tether_cli):
    (project / "chain.yaml").write_text(CHAIN.replace("FEATURIZE", "{label: churned, numeric: [contract]}"))
    failed = tether_cli("run", "chain.yaml", cwd=project)
    assert failed.exit_code == 2, failed
    assert failed.stderr.strip().splitlines()[-1] == (
        "tether: error: stages[2] (featurize): featurize: params.numeric[0]: column 'contract' holds str values, "
        "not numbers; list it under categorical")
    spec = "{label: churned, transform: 'fe_helpers:two_lines', columns: [tenure_months]}"
    (project / "chain.yaml").write_text(CHAIN.replace("FEATURIZE", spec))
    failed = tether_cli("run", "chain.yaml", cwd=project)
    assert failed.exit_code == 1, failed
    assert failed.stderr.strip().splitlines()[-1] == (
        "tether: error: stages[2] (featurize): featurize: fitting the transform on the training split failed: "
        "ValueError: Cannot use this strategy with non-numeric data: could not convert string to float: 'x'")


def test_validation_findings_against_definitions():
    frame = pd.DataFrame({
        "age": [20, 30, 150, np.nan, 40], "plan": ["basic", "pro", "gold", "pro", None],
        "score": ["1", "2", "3", "4", "5"], "city": list("abcde"),
    })
    definitions = [
        define("age", valid_range=[0, 120], max_missing_share=0.1, dtype="float"),
        define("plan", allowed_values=["basic", "pro"], dtype="string"),
        define("score", dtype="float"),
        define("city", max_cardinality=3),
    ]
    findings = {f.check: f for f in validate_features(frame, definitions)}
    assert set(findings) == {"feature.range", "feature.missing_share", "feature.allowed_values", "feature.type",
                             "feature.cardinality"}
    assert findings["feature.range"].message == "feature 'age': 1 of 5 values are outside [0, 120] (seen 20.0 .. 150.0)"
    assert findings["feature.allowed_values"].evidence["examples"] == ["gold"]
    assert findings["feature.type"].message == (f"feature 'score' has type {frame['score'].dtype}, "
                                                "its definition says float")
    assert findings["feature.missing_share"].evidence["missing_share"] == pytest.approx(0.2)
    assert findings["feature.cardinality"].evidence["distinct"] == 5
    assert validate_features(frame.assign(age=[20, 30, 40, 50, 60]), definitions[:1]) == []


def test_featurize_validates_links_definitions_and_lineage_reaches_models(project, host, tether_cli):
    spec = ("{label: churned, numeric: [tenure_months, monthly_charges, total_charges], categorical: [contract],"
            " catalogue: features.yaml}")
    _run, outputs = run_chain(chain(project, host, spec), host)
    features = outputs["featurize"]
    assert features.findings == ()
    assert set(features.definition_ids) == {"feature-tenure_months-1", "feature-monthly_charges-1",
                                            "feature-total_charges-1", "feature-contract-1"}
    from tether.workspace import Workspace

    ws = Workspace.for_chain(load_chain(project / "chain.yaml", host), host)
    assert [m["model_version"] for m in models_using(ws.store, "contract")] == ["mv-churn-1"]
    assert models_using(ws.store, "region") == []  # defined, but not an input of this model
    ws.close()

    listed = tether_cli("features", "ls", "--json", cwd=project)
    assert listed.exit_code == 0, listed
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["contract"]["models"] == ["mv-churn-1"] and rows["region"]["models"] == []
    shown = tether_cli("features", "show", "total_charges", cwd=project)
    assert shown.exit_code == 0, shown
    assert "valid_range" in shown.stdout and "mv-churn-1  (churn v1, feature v1, experimental)" in shown.stdout
    missing = tether_cli("features", "show", "total_charge", cwd=project)
    assert missing.exit_code == 2
    assert missing.stderr.strip().splitlines() == [
        (f"tether: error: no feature 'total_charge' in {project / '.tether'}; did you mean 'total_charges'? "
         "(see `tether features ls`)")]


def test_featurize_fails_on_error_findings_unless_told_to_record_them(project, host):
    catalogue = project / "features.yaml"
    catalogue.write_text(catalogue.read_text().replace("valid_range: [0, 500]", "valid_range: [0, 50]"))
    spec = "{label: churned, numeric: [monthly_charges], catalogue: features.yaml}"
    with pytest.raises(StageError, match=r"feature 'monthly_charges': \d+ of 2000 values are outside \[0, 50\]"):
        run_chain(chain(project, host, spec), host)
    _run, outputs = run_chain(chain(project, host, spec.replace("}", ", fail_on_findings: false}")), host)
    assert [f.check for f in outputs["featurize"].findings] == ["feature.range"]


def test_catalogue_cli_errors_are_one_line(project, tether_cli):
    (project / "bad.yaml").write_text("features:\n  - {name: x, ttl: [1]}\n")
    result = tether_cli("features", "apply", "bad.yaml", cwd=project)
    assert result.exit_code == 2
    assert result.stderr.strip() == ("tether: error: feature catalogue 'bad.yaml': features[0] (x).ttl: "
                                     "expected a duration such as '2d' or '6h', got [1]")
    ok = tether_cli("features", "apply", "features.yaml", cwd=project)
    assert ok.exit_code == 0 and "created    tenure_months  v1" in ok.stdout


# --- training-serving skew -----------------------------------------------------------------


def skew_definitions():
    return [
        define("spend_7d", entity="customer_id", timestamp="ts", calculation="fe_helpers:spend_7d", ttl="10d"),
        define("last_amount", entity="customer_id", timestamp="ts", calculation="amount", availability_lag="2h"),
    ]


@pytest.fixture
def online(tmp_path, host):
    store = host.backends.create("online_store", "sqlite", {"workspace": str(tmp_path / "online")})
    yield store
    store.close()


def test_skew_check_passes_when_serving_uses_the_same_logic(project, online):
    report = skew_check(skew_definitions(), events(), online_store=online, entities=10, timestamps=3)
    assert report.passed and report.checked == {"spend_7d": 30, "last_amount": 30}
    assert report.findings() == []
    assert online.view_info("anything") is None  # the check's view is dropped afterwards


def test_skew_check_catches_a_changed_time_window(project, online):
    report = skew_check(skew_definitions(), events(), online_store=online, entities=10, timestamps=3,
                        serving={"spend_7d": "fe_helpers:spend_3d"})
    assert not report.passed and report.mismatches["last_amount"] == 0
    assert report.mismatches["spend_7d"] > 0
    finding = report.findings()[0]
    assert finding.check == "feature.skew" and finding.evidence["feature"] == "spend_7d"
    example = finding.evidence["examples"][0]
    assert example["offline"] != example["online"]


def test_skew_check_catches_a_different_missing_value_default(project, online):
    report = skew_check(skew_definitions(), events(), online_store=online, entities=12, timestamps=4,
                        serving={"last_amount": "coalesce(amount, 0)"})
    assert report.mismatches["spend_7d"] == 0 and report.mismatches["last_amount"] > 0
    assert all(e["offline"] is None and e["online"] == 0 for e in report.examples if e["feature"] == "last_amount")


@pytest.mark.redis
def test_skew_check_against_redis(project, host):
    import uuid

    from conftest import require_server

    require_server("Redis", "127.0.0.1", 6379)
    prefix = f"tether-test:{uuid.uuid4().hex[:12]}:"
    store = host.backends.create("online_store", "redis", {"prefix": prefix})
    try:
        assert skew_check(skew_definitions(), events(), online_store=store, entities=8, timestamps=2).passed
        bad = skew_check(skew_definitions(), events(), online_store=store, entities=8, timestamps=2,
                         serving={"spend_7d": "fe_helpers:spend_3d"})
        assert bad.mismatches["spend_7d"] > 0
        assert list(store.client.scan_iter(match=f"{prefix}*")) == []  # views dropped
    finally:
        keys = list(store.client.scan_iter(match=f"{prefix}*"))
        if keys:
            store.client.delete(*keys)
        store.close()


GATE = """
  - stage: deploy
    plugin: batch
    params: {output: predictions}
policy:
  skew_gate:
    catalogue: features.yaml
    features: [monthly_charges, contract]
    source: "churn.data:scoring_batch"
    entities: 20
    timestamps: 2
SERVING"""


def test_skew_gate_runs_before_deploy(project, host):
    spec = "{label: churned, numeric: [monthly_charges], categorical: [contract]}"
    _run, outputs = run_chain(chain(project, host, spec, GATE.replace("SERVING", "")), host)
    details = outputs["deploy"].details["skew_check"]
    assert details["passed"] and details["checked"] == {"monthly_charges": 40, "contract": 40}
    serving = "    serving: {monthly_charges: 'round(monthly_charges)'}\n"
    with pytest.raises(StageError, match=r"skew gate: training and serving disagree beyond 1e-09 for "
                                         r"monthly_charges \(\d+/40\); not deploying mv-churn-1"):
        run_chain(chain(project, host, spec, GATE.replace("SERVING", serving)), host)
    assert not list((project / "predictions").glob("deploy-*.parquet"))[1:]  # only the first run deployed


def test_skew_cli(project, tether_cli):
    frame = events()
    frame.to_parquet(project / "events.parquet")
    (project / "skew.yaml").write_text(textwrap.dedent("""\
        features:
          - {name: last_amount, entity: customer_id, timestamp: ts, calculation: amount, availability_lag: 1h}
        """))
    ok = tether_cli("features", "skew", "--catalogue", "skew.yaml", "--source", "events.parquet",
                    "--entities", "8", cwd=project)
    assert ok.exit_code == 0, ok
    assert "last_amount" in ok.stdout and "passed" in ok.stdout
    bad = tether_cli("features", "skew", "--catalogue", "skew.yaml", "--source", "events.parquet",
                     "--serving", "last_amount=coalesce(amount, -1)", "--json", cwd=project)
    assert bad.exit_code == 1, bad
    summary = json.loads(bad.stdout)
    assert bad.stderr.strip() == (f"tether: error: training-serving skew beyond 1e-09 in last_amount "
                                  f"({summary['mismatches']['last_amount']}/{summary['checked']['last_amount']})")
    summary = json.loads(bad.stdout)
    assert not summary["passed"] and summary["mismatches"]["last_amount"] > 0
    unknown = tether_cli("features", "skew", "--catalogue", "skew.yaml", "--source", "missing.parquet", cwd=project)
    assert unknown.exit_code == 2 and unknown.stderr.startswith("tether: error: source 'missing.parquet' is not")


def test_skew_cli_reads_csv_sources_and_refuses_empty_or_untimed_ones(project, tether_cli, online):
    (project / "skew.yaml").write_text(
        "features:\n  - {name: last_amount, entity: customer_id, timestamp: ts, calculation: amount}\n")
    frame = events()
    frame.to_csv(project / "events.csv", index=False)
    ok = tether_cli("features", "skew", "--catalogue", "skew.yaml", "--source", "events.csv", "--entities", "6",
                    "--json", cwd=project)
    assert ok.exit_code == 0, ok
    assert json.loads(ok.stdout)["checked"] == {"last_amount": 18}
    frame.head(0).to_csv(project / "empty.csv", index=False)
    frame.head(0).to_parquet(project / "empty.parquet")
    frame.assign(ts=frame["ts"].dt.strftime("%d/%m/%Y %H:%M")).to_csv(project / "local.csv", index=False)
    empty = r"(skew check: the source has no rows|empty\.(csv|parquet)' holds no rows)"  # the reader's or ours
    for source, message in (("empty.csv", empty), ("empty.parquet", empty),
                            ("local.csv", "skew check: the timestamp column 'ts' holds str values, not timestamps")):
        bad = tether_cli("features", "skew", "--catalogue", "skew.yaml", "--source", source, cwd=project)
        assert bad.exit_code == 2, bad
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and re.match(f"tether: error: .*{message}", lines[0]), bad
    with pytest.raises(DataError, match="skew check: the source has no rows"):
        skew_check(skew_definitions(), events().head(0), online_store=online)


def test_skew_cli_options_are_range_checked(project, tether_cli):
    for option, value in (("--entities", "-5"), ("--entities", "0"), ("--timestamps", "0"), ("--tolerance", "-1")):
        bad = tether_cli("features", "skew", "--source", "events.parquet", option, value, cwd=project)
        assert bad.exit_code == 2, bad
        assert f"Invalid value for '{option}'" in bad.stderr and "Traceback" not in bad.stderr


def test_a_misspelt_skew_gate_fails_before_the_run(project, host):
    spec = "{label: churned, numeric: [monthly_charges]}"
    gate = "\npolicy:\n  skew_gate: {source: 'churn.data:scoring_batch', tolerence: 0.1}\n"
    with pytest.raises(ConfigError, match="policy.skew_gate: unknown key 'tolerence'; did you mean 'tolerance'"):
        run_chain(chain(project, host, spec, gate), host)
    from tether.workspace import Workspace

    with Workspace.open(host, project / ".tether") as ws:
        assert ws.store.find("run") == []  # nothing ran, nothing recorded


def test_skew_gate_numbers_are_range_checked_before_the_run(project, host):
    spec = "{label: churned, numeric: [monthly_charges]}"
    for key, value, message in (("entities", "-5", "an integer of at least 1, got -5"),
                                ("timestamps", "0", "an integer of at least 1, got 0"),
                                ("tolerance", "-1", "a number of at least 0, got -1"),
                                ("entities", "many", "an integer of at least 1, got 'many'")):
        gate = f"\npolicy:\n  skew_gate: {{source: 'churn.data:scoring_batch', {key}: {value}}}\n"
        with pytest.raises(ConfigError, match=f"policy.skew_gate.{key}: expected {message}"):
            run_chain(chain(project, host, spec, gate), host)


def test_training_set_with_available_at_and_a_reordered_series(project):
    frame = events().assign(known_at=lambda f: f["ts"] + pd.Timedelta("3h"))
    reordered = define("spend_7d", entity="customer_id", timestamp="ts", calculation="fe_helpers:spend_7d_sorted")
    late = define("amount", entity="customer_id", timestamp="ts", calculation="amount", available_at="known_at")
    labels = frame.sample(40, random_state=1)[["customer_id", "ts"]].rename(columns={"ts": "predict_at"})
    labels = labels.reset_index(drop=True)
    got = build_training_set(labels, [reordered, late], frame, prediction_time="predict_at")
    reference = compute_feature(define("spend_7d", entity="customer_id", timestamp="ts",
                                       calculation="fe_helpers:spend_7d"), frame)
    want = labels.merge(reference, left_on=["customer_id", "predict_at"], right_on=["customer_id", "ts"])
    np.testing.assert_allclose(got["spend_7d"], want["spend_7d"])  # each event sees its own rolling sum
    for row, value in zip(labels.itertuples(), got["amount"]):  # known 3h later: the latest one known by then
        known = frame[(frame.customer_id == row.customer_id) & (frame.known_at <= row.predict_at)]
        expected = known.loc[known.ts.idxmax(), "amount"] if len(known) else np.nan
        assert (np.isnan(value) and np.isnan(expected)) or value == expected
