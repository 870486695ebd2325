"""Evaluate, register and deploy: parameter checks before the run, batch scoring's columns,
and the registry adding no version for an identical model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from chains import customers_split_by_time
from tether.config import load_chain
from tether.errors import ConfigError, DataError
from tether.runner import run_chain
from tether.workspace import Workspace

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn"

CHAIN = """\
version: 1
name: models
stages:
""" + customers_split_by_time(1500) + """\
  - stage: featurize
    params: FEATURIZE
  - {step: "churn.train:fit"}
  - stage: evaluate
    plugin: classification
    params: EVALUATE
  - stage: register
    params: {model_name: churn}
"""
FEATURIZE = "{label: churned, numeric: [tenure_months, monthly_charges], categorical: [contract]}"
DEPLOY = """\
  - stage: snapshot
    id: scoring
    plugin: python
    params: {function: "churn.data:scoring_batch", dataset: scoring, time_column: event_ts, key: [customer_id],
             kwargs: {rows: 300}}
  - stage: deploy
    plugin: batch
    inputs: {snapshot: scoring}
    params: {output: predictions, keep_columns: KEEP}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copytree(EXAMPLE / "churn", tmp_path / "churn")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def chain(project, host, *, featurize: str = FEATURIZE, evaluate: str = "{}", keep: str | None = None):
    text = CHAIN.replace("FEATURIZE", featurize).replace("EVALUATE", evaluate)
    if keep is not None:
        text += DEPLOY.replace("KEEP", keep)
    path = project / "chain.yaml"
    path.write_text(text)
    return load_chain(path, host)


def runs(project, host) -> list:
    with Workspace.open(host, project / ".tether") as ws:
        return ws.store.find("run")


# --- the registry -----------------------------------------------------------------------------


def test_a_forced_rerun_of_an_unchanged_chain_registers_no_new_version(project, host):
    _run, first = run_chain(chain(project, host), host)
    _run, again = run_chain(chain(project, host), host, force=True)
    assert first["register"].id == again["register"].id == "mv-churn-1"
    with Workspace.open(host, project / ".tether") as ws:
        assert [mv.version for mv in ws.store.find("model_version", name="churn")] == [1]


def _register(workspace: str, model_id: str, barrier, results) -> None:
    from tether.context import RunContext
    from tether.manager import PluginHost

    host = PluginHost(entry_points=False)
    registry = host.backends.create("registry", "default", {"model_name": "churn", "require_passed": False})
    with Workspace.open(host, workspace) as ws:
        model = ws.store.get(model_id, kind="model")
        barrier.wait(timeout=120)
        results.put(registry.register(model, None, context=RunContext(host=host, workspace=ws)).id)


def test_concurrent_registrations_of_one_model_add_one_version(project, host):
    """Eight processes register the same model at once: one new version, which all return."""
    import multiprocessing

    _run, outputs = run_chain(chain(project, host), host)
    with Workspace.open(host, project / ".tether") as ws:  # make the latest version another model's
        from sklearn.dummy import DummyClassifier
        from tether.plugins.registry.api import register_model

        register_model(ws, "churn", DummyClassifier())
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_register, args=(str(project / ".tether"), outputs["fit"].id, barrier, results))
             for _ in range(8)]
    for p in procs:
        p.start()
    got = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 8
    assert set(got) == {"mv-churn-3"}
    with Workspace.open(host, project / ".tether") as ws:
        assert sorted(mv.version for mv in ws.store.find("model_version", name="churn")) == [1, 2, 3]


# --- parameter mistakes that would silently weaken a check: errors before the run ------------


def test_the_label_listed_as_a_feature_is_an_error_before_the_run(project, host):
    with pytest.raises(ConfigError, match=r"stages\[2\].params.numeric\[2\]: 'churned' is the label"):
        chain(project, host, featurize="{label: churned, numeric: [tenure_months, monthly_charges, churned]}")
    with pytest.raises(ConfigError, match=r"stages\[2\].params.categorical\[0\]: 'churned' is the label"):
        chain(project, host, featurize="{label: churned, numeric: [tenure_months], categorical: [churned]}")
    with pytest.raises(ConfigError, match=r"stages\[2\].params.columns\[1\]: 'churned' is the label"):
        chain(project, host, featurize="{label: churned, transform: 'm:f', columns: [tenure_months, churned]}")
    assert runs(project, host) == []  # nothing ran, no model registered


def test_empty_and_repeated_feature_names_are_errors_before_the_run(project, host):
    with pytest.raises(ConfigError, match=r"stages\[2\].params.numeric\[1\]: a column name must be a non-empty"):
        chain(project, host, featurize="{label: churned, numeric: [tenure_months, '']}")
    with pytest.raises(ConfigError, match=r"stages\[2\].params.label: a column name must be a non-empty"):
        chain(project, host, featurize="{label: '', numeric: [tenure_months]}")
    with pytest.raises(ConfigError, match=r"stages\[2\].params.categorical\[0\]: 'tenure_months' is listed twice"):
        chain(project, host, featurize="{label: churned, numeric: [tenure_months], categorical: [tenure_months]}")


def test_the_classification_threshold_must_be_a_probability(project, host):
    with pytest.raises(ConfigError, match=r"stages\[4\].params.threshold: must be in \[0, 1\], got 5.0"):
        chain(project, host, evaluate="{threshold: 5.0}")
    with pytest.raises(ConfigError, match=r"stages\[4\].params.threshold: must be in \[0, 1\], got -0.1"):
        chain(project, host, evaluate="{threshold: -0.1}")
    assert chain(project, host, evaluate="{threshold: 0.3}")


# --- batch deploy: the columns kept next to the predictions ----------------------------------


def test_batch_deploy_keeps_the_key_column_once_when_keep_columns_names_it(project, host):
    _run, outputs = run_chain(chain(project, host, keep="[customer_id, region, region]"), host)
    scored = pd.read_parquet(outputs["deploy"].location)
    assert list(scored.columns) == ["customer_id", "region", "event_ts", "score", "prediction", "model_version"]
    assert len(scored) == 300


def test_batch_deploy_keep_columns_naming_a_missing_column_is_a_clear_error(project, host):
    with pytest.raises(DataError, match=r"stages\[7\] \(deploy\): params.keep_columns\[1\]: the snapshot "
                                        r"snap-\S+ \(scoring\) has no column 'regoin'; did you mean 'region'\?"):
        run_chain(chain(project, host, keep="[customer_id, regoin]"), host)
    assert not list((project / "predictions").glob("*.parquet"))  # nothing scored, nothing written


def test_batch_deploy_keep_columns_may_not_shadow_the_outputs(project, host):
    with pytest.raises(ConfigError, match=r"stages\[7\].params.keep_columns\[0\]: 'score' is a column the deployer "
                                          "writes"):
        chain(project, host, keep="[score]")
    with pytest.raises(ConfigError, match=r"stages\[7\].params.keep_columns\[0\]: a column name must be a non-empty"):
        chain(project, host, keep="['']")


def test_a_gate_on_a_metric_the_evaluator_does_not_compute_fails_before_the_run(host):
    from tether.errors import ConfigError

    with pytest.raises(ConfigError, match=r"stages\[4\]\.params\.min\.roc_aux: unknown metric 'roc_aux' "
                                          r"\(the classification evaluator computes: roc_auc,"):
        host.backends.create("evaluator", "classification", {"min": {"roc_aux": 0.7}}, where="stages[4]")
    with pytest.raises(ConfigError, match=r"params\.model_name: baseline: latest needs the model_name"):
        host.backends.create("evaluator", "regression", {"baseline": "latest"}, where="stages[4]")
    with pytest.raises(ConfigError, match=r"params\.split"):
        host.backends.create("evaluator", "regression", {"split": "holdout"}, where="stages[4]")
