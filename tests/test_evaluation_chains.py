"""The evaluate stage in chains: the iris, wine and diabetes examples end to end, slice
columns checked before the run, known answers through the registry, model-version
baselines re-scored on the evaluated rows, and ``tether evaluate`` on a predictions file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tether.config import load_chain
from tether.errors import ConfigError, StageError
from tether.runner import run_chain
from tether.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CHAIN = """\
version: 1
name: evaluation
stages:
  - stage: snapshot
    id: customers
    plugin: python
    params: {function: "churn.data:customers", dataset: customers, time_column: event_ts, key: [customer_id],
             kwargs: {rows: ROWS}}
  - stage: split
    plugin: time
    params: {time_column: event_ts, train: TRAIN, validation: 0.15, test: TEST}
  - stage: featurize
    params: {label: churned, numeric: [tenure_months, monthly_charges, support_tickets, days_since_login],
             categorical: [region, contract]}
  - {step: "STEP"}
  - stage: evaluate
    plugin: classification
    params: EVALUATE
  - stage: register
    params: {model_name: churn}
"""

SPOILED = '''
import numpy as np
from sklearn.linear_model import LogisticRegression


class SpoiledInSouth:
    """A good model, except that it knows nothing about customers in the south."""

    def __init__(self, inner, column):
        self.inner, self.column = inner, column
        self.classes_ = inner.classes_

    def predict_proba(self, X):
        proba = self.inner.predict_proba(X)
        south = X[self.column].to_numpy() == 1
        proba[south] = 0.5
        return proba

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _train(features, context):
    train = context.workspace.read_frame(features.matrices["train"])
    return train[list(features.feature_names)], train[features.label]


def spoiled(features, context):
    X, y = _train(features, context)
    return SpoiledInSouth(LogisticRegression(max_iter=1000).fit(X, y), "region_south")


def noise(features, context):
    X, y = _train(features, context)
    return LogisticRegression(max_iter=1000).fit(X, np.random.default_rng(0).permutation(y.to_numpy()))
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copytree(EXAMPLES / "churn" / "churn", tmp_path / "churn")
    (tmp_path / "trained.py").write_text(SPOILED)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def chain(project, host, *, evaluate="{}", step="churn.train:fit", rows=3000, test=0.15):
    text = (CHAIN.replace("EVALUATE", evaluate).replace("STEP", step).replace("ROWS", str(rows))
            .replace("TEST", str(test)).replace("TRAIN", str(round(0.85 - test, 2))))
    (project / "chain.yaml").write_text(text)
    return load_chain(project / "chain.yaml", host)


def copy_example(name: str, tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns(".tether", "__pycache__"))
    monkeypatch.syspath_prepend(str(folder))
    return folder


# --- the examples -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "task", "slices"), [("iris", "multiclass", {"petal_length", "sepal_width"}),
                                                      ("wine", "multiclass", {"strong", "color_intensity"}),
                                                      ("diabetes", "regression", {"sex", "age"})])
def test_the_examples_run_end_to_end(name, task, slices, tmp_path, monkeypatch, host):
    folder = copy_example(name, tmp_path, monkeypatch)
    run, outputs = run_chain(load_chain(folder / "chain.yaml", host), host)
    assert run.status == "succeeded"
    ev = outputs["evaluate"]
    assert ev.task == task and ev.passed and ev.source == "stage"
    assert {s.slice for s in ev.slices} == slices
    assert all(s.intervals for s in ev.slices if not s.low_support)
    assert ev.baselines[0].name == "dummy" and ev.outcomes and all(o.passed for o in ev.outcomes)
    assert outputs["register"].version == 1
    if name in ("diabetes", "iris"):  # a batch deployment summarises its predictions by the kind of model
        details = outputs["deploy"].details
        assert "positive_rate" not in details
        if task == "regression":
            assert 50 < details["prediction_mean"] < 250 and details["prediction_std"] > 0
        else:
            assert set(details["class_shares"]) == {"setosa", "versicolor", "virginica"}
            assert sum(details["class_shares"].values()) == pytest.approx(1.0)
    if task == "regression":
        assert "positive_rate" not in ev.metrics and ev.residuals["quantiles"]
        assert next(b for b in ev.baselines if b.name == "bmi_rule").kind == "rule"
    else:
        assert len(ev.confusion["matrix"]) == 3 and len(ev.per_class) == 3
    page = (folder / ".tether" / "reports" / "evaluation.html").read_text()
    assert ev.id in page and outputs["train"].id in page  # the report, with its lineage
    with Workspace.open(host, folder / ".tether") as ws:
        snapshot_rows = len(ws.read_snapshot(outputs["snapshot"]))
    assert all(0 <= e["row"] < snapshot_rows for e in ev.examples["highest_loss"])


def test_an_example_runs_from_the_command_line(tmp_path, tether_cli):
    folder = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris", folder, ignore=shutil.ignore_patterns(".tether", "__pycache__"))
    result = tether_cli("run", "iris/chain.yaml")
    assert result.exit_code == 0, result
    line = next(row for row in result.stdout.splitlines() if row.startswith("evaluate"))
    assert "f1_macro 0.9" in line and "(min 0.85)" in line and "passed" in line


# --- known answers through a chain ------------------------------------------------------------


def test_a_model_no_better_than_the_dummy_fails_its_gate_and_is_not_registered(project, host):
    with pytest.raises(StageError, match=r"roc_auc 0\.\d+ does not beat dummy 0\.5000 by 0\.05"):
        run_chain(chain(project, host, step="trained:noise", evaluate="{beats: {dummy: 0.05}}"), host)
    with Workspace.open(host, project / ".tether") as ws:
        (ev,) = ws.store.find("evaluation")
        assert not ev.passed and ev.outcomes[0].rule == "beats.dummy"
        assert ws.store.find("model_version", name="churn") == []


def test_a_model_bad_in_one_region_fails_the_slice_gate_which_names_the_region(project, host):
    params = ("{slices: [{column: region}], min: {roc_auc: 0.6}, "
              "slice_gates: [{slice: region, metric: roc_auc, min: 0.6}]}")
    with pytest.raises(StageError, match=r"region=south: roc_auc 0\.5000 is below the minimum 0\.6"):
        run_chain(chain(project, host, step="trained:spoiled", evaluate=params), host)
    with Workspace.open(host, project / ".tether") as ws:
        (ev,) = ws.store.find("evaluation")
    failed = [o for o in ev.outcomes if not o.passed]
    assert [o.segment for o in failed] == ["region=south"]
    assert {s.segment for s in ev.slices} == {"north", "south", "east", "west"}
    assert ev.metrics["roc_auc"] > 0.6  # fine on average


# --- baselines: re-scored, not copied ---------------------------------------------------------


def test_the_latest_version_is_re_scored_on_the_evaluated_rows(project, host):
    from tether.plugins.registry.api import set_alias

    evaluate = "{baseline: latest, model_name: churn, max_regression: {roc_auc: 0.05}}"
    _run, first = run_chain(chain(project, host, evaluate=evaluate), host)
    ev1 = first["evaluate"]
    assert any(f.check == "baseline" for f in ev1.findings)  # nothing registered yet: not scored
    assert ev1.outcomes[0].passed and ev1.outcomes[0].message.startswith("skipped")
    with Workspace.open(host, project / ".tether") as ws:
        set_alias(ws, "churn@1", "champion")
    evaluate = ("{baseline: latest, model_name: churn, max_regression: {roc_auc: 0.05}, "
                "baselines: {champion: {model: churn@champion}}, beats: {champion: {metric: roc_auc, margin: -0.05}}}")
    _run, second = run_chain(chain(project, host, evaluate=evaluate, test=0.25), host)
    ev2 = second["evaluate"]
    (latest,) = [b for b in ev2.baselines if b.name == "latest"]
    assert latest.kind == "model_version" and latest.reference == first["register"].id == ev2.baseline_id
    assert latest.metrics["rows"] == ev2.metrics["rows"] != ev1.metrics["rows"]  # the new test rows
    assert latest.metrics["roc_auc"] != ev1.metrics["roc_auc"]
    (champion,) = [b for b in ev2.baselines if b.name == "champion"]
    assert champion.reference == first["register"].id and champion.metrics == latest.metrics
    assert [o.rule for o in ev2.outcomes] == ["beats.champion", "max_regression.latest.roc_auc"]


def test_a_model_reference_that_resolves_to_nothing_is_skipped_with_a_warning(project, host):
    evaluate = "{baselines: {production: {model: churn@7}}, beats: {production: 0.0}}"
    _run, outputs = run_chain(chain(project, host, evaluate=evaluate), host)
    ev = outputs["evaluate"]
    assert ev.passed and ev.outcomes[0].message.startswith("skipped: churn@7")
    assert any(f.check == "baseline" and "production" in f.message for f in ev.findings)


# --- checked before the run -------------------------------------------------------------------


def test_gate_mistakes_are_config_errors_naming_the_key(project, host):
    with pytest.raises(ConfigError, match=r"stages\[4\]\.params\.min\.roc_aux: unknown metric 'roc_aux'"):
        chain(project, host, evaluate="{min: {roc_aux: 0.7}}")
    with pytest.raises(ConfigError, match=r"stages\[4\]\.params\.slice_gates\[0\]\.slice: no slice 'regoin'; did "
                                          r"you mean 'region'\?"):
        chain(project, host, evaluate="{slices: [{column: region}], "
                                      "slice_gates: [{slice: regoin, metric: recall, min: 0.5}]}")
    with pytest.raises(ConfigError, match=r"stages\[4\]\.params\.slice_gates\[0\]\.metric: unknown metric 'r2'"):
        chain(project, host, evaluate="{slices: [{column: region}], slice_gates: [{slice: region, metric: r2, "
                                      "min: 0.5}]}")
    with pytest.raises(ConfigError, match=r"stages\[4\]\.params\.task: the classification evaluator evaluates "
                                          r"binary, multiclass, not regression"):
        chain(project, host, evaluate="{task: regression}")
    with pytest.raises(ConfigError, match=r"stages\[4\]\.params\.beats\.dummy\.metric: unknown metric 'auc'"):
        chain(project, host, evaluate="{beats: {dummy: {metric: auc, margin: 0.1}}}")


def test_a_slice_column_missing_from_a_file_source_fails_before_the_run(project, host):
    from churn.data import customers

    customers(rows=600).to_csv(project / "customers.csv", index=False)
    text = CHAIN.replace("""    plugin: python
    params: {function: "churn.data:customers", dataset: customers, time_column: event_ts, key: [customer_id],
             kwargs: {rows: ROWS}}""", """    plugin: csv
    params: {path: customers.csv, dataset: customers, time_column: event_ts, key: [customer_id]}""")
    text = text.replace("STEP", "churn.train:fit").replace("TEST", "0.15").replace("TRAIN", "0.7")
    text = text.replace("EVALUATE", "{slices: [{column: regoin}]}")
    (project / "chain.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"stages\[4\]\.params\.slices\[0\]\.column: the snapshot source has no "
                                          r"column 'regoin'; did you mean 'region'\?"):
        run_chain(load_chain(project / "chain.yaml", host), host)
    with Workspace.open(host, project / ".tether") as ws:
        assert ws.store.find("run") == []  # nothing ran


# --- tether evaluate --------------------------------------------------------------------------


def _predictions(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 2000
    region = rng.choice(["north", "south"], n)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.15, n), 0, 1)
    p[region == "south"] = rng.uniform(size=(region == "south").sum())
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"id": range(n), "region": region, "churned": y, "p": p}).to_csv(path, index=False)
    return path


def test_tether_evaluate_judges_a_predictions_file(tmp_path, tether_cli):
    path = _predictions(tmp_path)
    ok = tether_cli("evaluate", path.name, "--label", "churned", "--score", "p", "--slice", "region", "--id", "id",
                    "--min", "roc_auc=0.6", "--json")
    assert ok.exit_code == 0, ok
    data = json.loads(ok.stdout)["data"]
    assert data["task"] == "binary" and data["source"] == "file:predictions.csv"
    assert {s["segment"] for s in data["slices"]} == {"north", "south"}
    assert data["examples"]["id_column"] == "id"
    human = tether_cli("evaluate", path.name, "--label", "churned", "--score", "p", "--slice", "region")
    assert human.exit_code == 0 and "roc_auc" in human.stdout and "segment" in human.stdout


def test_tether_evaluate_exits_1_naming_the_failed_rule_and_writes_html(tmp_path, tether_cli):
    path = _predictions(tmp_path)
    params = tmp_path / "gates.yaml"
    params.write_text("slices: [{column: region}]\nslice_gates: [{slice: region, metric: roc_auc, min: 0.7}]\n")
    res = tether_cli("evaluate", path.name, "--label", "churned", "--score", "p", "--params", params.name,
                     "--html", "report.html")
    assert res.exit_code == 1, res
    assert "region=south: roc_auc" in res.stdout and "FAIL" in res.stdout
    assert res.stderr.strip().startswith("tether: error: evaluation eval-")
    html = (tmp_path / "report.html").read_text()
    assert "<html" in html.lower() and "region" in html


@pytest.mark.parametrize(("args", "message"), [
    (["--label", "churnd", "--score", "p"], "--label: the predictions have no column 'churnd'; did you mean "
                                            "'churned'?"),
    (["--label", "churned", "--score", "p", "--slice", "regoin"], "no column 'regoin'"),
    (["--label", "churned", "--score", "p", "--min", "roc_aux=0.5"], "min.roc_aux: unknown metric 'roc_aux'"),
    (["--label", "churned", "--score", "region"], "scores must be numbers"),
])
def test_tether_evaluate_bad_input_is_one_line(tmp_path, tether_cli, args, message):
    path = _predictions(tmp_path)
    res = tether_cli("evaluate", path.name, *args)
    assert res.exit_code == 2, res
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("tether: error: ")
    assert message in res.stderr


def test_tether_evaluate_multiclass_scores_and_regression_values(tmp_path, tether_cli):
    rng = np.random.default_rng(1)
    n = 300
    species = rng.choice(["setosa", "versicolor", "virginica"], n)
    proba = rng.dirichlet([1, 1, 1], n)
    proba[np.arange(n), pd.Categorical(species, categories=["setosa", "versicolor", "virginica"]).codes] += 1
    proba /= proba.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"species": species, "p_setosa": proba[:, 0], "p_versicolor": proba[:, 1],
                          "p_virginica": proba[:, 2], "y": rng.normal(100, 20, n)})
    frame["y_hat"] = frame["y"] + rng.normal(0, 5, n)
    frame.to_parquet(tmp_path / "scored.parquet")
    multi = tether_cli("evaluate", "scored.parquet", "--label", "species", "--score", "setosa=p_setosa",
                       "--score", "versicolor=p_versicolor", "--score", "virginica=p_virginica", "--json")
    assert multi.exit_code == 0, multi
    data = json.loads(multi.stdout)["data"]
    assert data["task"] == "multiclass" and data["classes"] == ["setosa", "versicolor", "virginica"]
    assert len(data["confusion"]["matrix"]) == 3 and data["metrics"]["accuracy"] > 0.6
    reg = tether_cli("evaluate", "scored.parquet", "--label", "y", "--pred", "y_hat", "--max", "mae=6", "--json")
    assert reg.exit_code == 0, reg
    data = json.loads(reg.stdout)["data"]
    assert data["task"] == "regression" and data["metrics"]["mae"] < 6 and "positive_rate" not in data["metrics"]
