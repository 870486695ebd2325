"""Rollout strategies: batch streaming, parameter checks with key paths, the deployment state
machine with its events, audit entries and rollbacks (the monitor's included)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from deploy_helpers import CHAIN, build_project, copy_project
from tether.context import RunContext
from tether.errors import ConfigError, DataError, DeploymentError
from tether.workspace import Workspace


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy-project")
    return root, build_project(root)


@pytest.fixture
def project(built, tmp_path):
    return copy_project(built[0], tmp_path / "project")


@pytest.fixture
def ws(project, host):
    with Workspace.open(host, project / ".tether") as workspace:
        yield workspace


@pytest.fixture
def ids(built):
    return built[1]


@pytest.fixture
def ctx(host, ws, project, monkeypatch):
    monkeypatch.chdir(project)
    return RunContext(host=host, workspace=ws)


def start(host, ctx, strategy: str, version: str, snapshot=None, **params):
    """Start a deployment as ``tether deploy start`` does; the stored record."""
    from tether.plugins.rollout.state import record_start

    backend = host.backends.create("rollout", strategy, params)
    if hasattr(backend, "preflight"):
        backend.preflight(context=ctx)
    mv = ctx.workspace.resolve(version, kind="model_version")
    dep = backend.deploy(mv, snapshot, context=ctx)
    return record_start(ctx.store, dep, parents=[(mv.id, "model_version")])


# --- batch: streaming in chunks ------------------------------------------------------------------


def test_batch_streaming_in_small_chunks_equals_scoring_in_memory(host, ctx, ws, ids):
    from tether.plugins.bundles import load_bundle

    snapshot = ws.store.get(ids["scoring"], kind="snapshot")
    dep = start(host, ctx, "batch", "churn@1", snapshot, batch_rows=64, keep_columns=["region"])
    scored = pd.read_parquet(dep.location)
    frame = ws.read_snapshot(snapshot)
    whole = load_bundle(ws, "churn@1", unseen="ignore").predict(frame)
    assert len(scored) == 300 == dep.details["rows"]
    np.testing.assert_allclose(scored["score"].to_numpy(), whole["score"].to_numpy())
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), whole["prediction"].to_numpy())
    assert scored["customer_id"].tolist() == frame["customer_id"].tolist()  # row order kept across chunks
    assert dep.state == "completed" and dep.strategy == "batch" and dep.environment == "batch"
    assert dep.details["positive_rate"] == pytest.approx(whole["prediction"].mean())
    assert ws.read_frame(dep.outputs[0]).equals(scored)  # the stored copy is the same table


def test_batch_keep_columns_naming_the_key_column_writes_it_once(host, ctx, ws, ids):
    snapshot = ws.store.get(ids["scoring"], kind="snapshot")
    dep = start(host, ctx, "batch", "churn@1", snapshot, batch_rows=50,
                keep_columns=["customer_id", "region", "customer_id", "event_ts"])
    scored = pd.read_parquet(dep.location)
    assert list(scored.columns) == ["customer_id", "region", "event_ts", "score", "prediction", "model_version"]
    assert scored["model_version"].unique().tolist() == [ids["mv1"]]


def test_batch_scores_a_csv_file_with_its_key_kept(host, ctx, ws, ids, project):
    frame = ws.read_snapshot(ws.store.get(ids["scoring"], kind="snapshot"))
    frame.drop(columns=["event_ts"]).to_csv(project / "to_score.csv", index=False)
    dep = start(host, ctx, "batch", "churn@2", source="to_score.csv", batch_rows=70,
                keep_columns=["customer_id", "customer_id"], output="out")
    scored = pd.read_parquet(dep.location)
    assert list(scored.columns) == ["customer_id", "score", "prediction", "model_version"]
    assert len(scored) == 300 and dep.details["source"] == "file 'to_score.csv'"
    assert dep.location.startswith(str(project / "out"))


def test_batch_input_mistakes_are_clear_errors_and_write_nothing(host, ctx, ws, ids, project):
    snapshot = ws.store.get(ids["scoring"], kind="snapshot")
    with pytest.raises(DataError, match=r"params.keep_columns\[0\]: the snapshot \S+ \(scoring\) has no column "
                                        r"'regoin'; did you mean 'region'\?"):
        start(host, ctx, "batch", "churn@1", snapshot, keep_columns=["regoin"])
    pd.DataFrame({"tenure_months": [1]}).to_csv(project / "thin.csv", index=False)
    with pytest.raises(DataError, match=r"file 'thin.csv' lacks the model's input columns \['monthly_charges'"):
        start(host, ctx, "batch", "churn@1", source="thin.csv")
    with pytest.raises(DataError, match="needs data to score"):
        start(host, ctx, "batch", "churn@1")
    with pytest.raises(DataError, match="params.source: file 'nope.csv' not found"):
        start(host, ctx, "batch", "churn@1", source="nope.csv")
    assert not (project / "predictions").exists() or not list((project / "predictions").glob("*"))
    assert ws.store.find("deployment") == []


# --- parameters are validated with their key paths -------------------------------------------------


@pytest.mark.parametrize(("strategy", "params", "message"), [
    ("canary", {"steps": [5, 3, 100]}, r"stages\[7\].params.steps\[1\]: steps must increase, got 3 after 5"),
    ("canary", {"steps": [5, 50]}, r"stages\[7\].params.steps\[1\]: the last step must be 100"),
    ("canary", {"steps": [0, 100]}, r"stages\[7\].params.steps\[0\]: a step is a percentage in \(0, 100\]"),
    ("canary", {"steps": []}, r"stages\[7\].params.steps: needs at least one step"),
    ("canary", {"analysis": {"min_requests": 0}}, r"stages\[7\].params.analysis.min_requests: must be at least 1"),
    ("canary", {"analysis": {"interval": -1}}, r"stages\[7\].params.analysis.interval: must be above 0"),
    ("canary", {"analysis": {"signals": {"error_rate": 0.1}}},
     r"stages\[7\].params.analysis.signals.error_rate: expected a mapping"),
    ("canary", {"sticky_key": ""}, r"stages\[7\].params.sticky_key: must be a non-empty field name"),
    ("canary", {"fallback": {"mode": "rule"}}, r"stages\[7\].params.fallback.rule: mode 'rule' needs rule"),
    ("canary", {"fallback": {"mode": "rule", "rule": "nocolon"}},
     r"stages\[7\].params.fallback.rule: expected 'module:function'"),
    ("canary", {"fallback": {"mode": "guess"}}, r"stages\[7\].params.fallback.mode: 'guess' is not one of"),
    ("canary", {"stepz": [5, 100]}, r"stages\[7\].params: unknown parameter 'stepz'"),
    ("shadow", {"sample": 2}, r"stages\[7\].params.sample: a share must be in \[0, 1\]"),
    ("shadow", {"environment": "../prod"}, r"stages\[7\].params.environment: the environment '../prod' may hold"),
    ("blue_green", {"warmup_requests": -1}, r"stages\[7\].params.warmup_requests: must be at least 0"),
    ("batch", {"keep_columns": ["score"]}, r"stages\[7\].params.keep_columns\[0\]: 'score' is a column the deployer"),
    ("batch", {"batch_rows": 0}, r"stages\[7\].params.batch_rows: must be at least 1"),
    ("batch", {"unseen": "drop"}, r"stages\[7\].params.unseen: 'drop' is not one of error, ignore, fallback"),
])
def test_each_strategy_validates_its_params_with_key_paths(host, strategy, params, message):
    with pytest.raises(ConfigError, match=message):
        host.backends.create("rollout", strategy, params, where="stages[7]")


def test_an_unknown_strategy_lists_the_available_ones(host):
    from tether.errors import PluginError

    with pytest.raises(PluginError, match=r"unknown rollout plugin 'canery'; did you mean 'canary'\? \(available: "
                                          r"batch, blue_green, canary, shadow"):
        host.backends.create("rollout", "canery", {})


def test_a_fallback_rule_that_does_not_import_fails_at_preflight(host, ctx):
    backend = host.backends.create("rollout", "canary", {"fallback": {"mode": "rule", "rule": "nowhere:rule"}})
    with pytest.raises(ConfigError, match=r"params.fallback.rule: cannot import 'nowhere'"):
        backend.preflight(context=ctx)


# --- the state machine ---------------------------------------------------------------------------


def test_a_canary_walks_its_steps_to_promoted_with_every_decision_recorded(host, ctx, ws, ids):
    from tether import audit
    from tether.plugins.rollout.state import active_deployment, advance, events

    first = start(host, ctx, "blue_green", "churn@1")
    assert (first.state, first.weight, first.stable_version_id, first.rollback_target) == ("pending", 0, None, None)
    assert advance(ws.store, first, "promote", {"checks": "ok"}).state == "promoted"
    canary = start(host, ctx, "canary", "churn@2", steps=[5, 25, 50, 100], sticky_key="customer_id")
    assert (canary.state, canary.weight, canary.stable_version_id) == ("active", 5, ids["mv1"])
    assert canary.rollback_target == ids["mv1"] and canary.sticky_key == "customer_id"
    assert active_deployment(ws.store, "production").id == canary.id
    held = advance(ws.store, canary, "hold", {"error_rate": 0.2}, reason="too few requests")
    assert (held.state, held.weight) == ("active", 5)
    weights = [advance(ws.store, canary, "promote", {"signals": []}).weight for _ in range(3)]
    assert weights == [25, 50, 100]
    now = active_deployment(ws.store, "production")
    assert (now.id, now.state, now.weight, now.step) == (canary.id, "promoted", 100, 3)
    history = events(ws.store, canary.id)
    assert [(e.action, e.from_state, e.to_state, e.weight) for e in history] == [
        ("held", "active", "active", 5), ("advanced", "active", "active", 25), ("advanced", "active", "active", 50),
        ("promoted", "active", "promoted", 100)]
    assert history[0].evidence == {"error_rate": 0.2} and history[0].reason == "too few requests"
    assert ws.store.get(canary.id, kind="deployment").state == "active"  # the stored start is never rewritten
    actions = [e.action for e in audit.entries(ws.store) if e.subject in (first.id, canary.id)]
    assert actions == ["deployment.started", "deployment.promoted", "deployment.started", "deployment.held",
                       "deployment.advanced", "deployment.advanced", "deployment.promoted"]
    assert audit.verify(ws.store) == []
    assert (ids["mv2"], "model_version") in {(e["parent"], e["relation"])
                                             for e in ws.store.lineage(canary.id)["upstream"]}


def test_illegal_transitions_are_refused(host, ctx, ws):
    from tether.plugins.rollout.state import abort, advance, roll_back

    green = start(host, ctx, "blue_green", "churn@1")
    with pytest.raises(DeploymentError, match="unknown decision 'ship'"):
        advance(ws.store, green, "ship", {})
    advance(ws.store, green, "promote", {})
    with pytest.raises(DeploymentError, match=r"cannot promote deployment \S+: it is promoted"):
        advance(ws.store, green, "promote", {})
    with pytest.raises(DeploymentError, match=r"cannot abort deployment \S+: it is promoted"):
        abort(ws.store, green, "no")
    shadow = start(host, ctx, "shadow", "churn@2")
    with pytest.raises(DeploymentError, match=r"has deployment \S+ under way \(shadow, active\)"):
        start(host, ctx, "canary", "churn@2")
    abort(ws.store, shadow, "enough")
    with pytest.raises(DeploymentError, match="is already aborted; nothing to roll back"):
        roll_back(ws.store, shadow, "late")
    with pytest.raises(DeploymentError, match="already serves environment 'production'"):
        start(host, ctx, "canary", "churn@1")


def test_a_canary_needs_a_serving_version_and_blue_green_starts_the_first(host, ctx):
    with pytest.raises(DeploymentError, match=r"a canary deployment needs a version serving environment "
                                              r"'production' to compare with; deploy the first version with "
                                              r"blue_green, or pass stable"):
        start(host, ctx, "canary", "churn@2")
    dep = start(host, ctx, "canary", "churn@2", stable="churn@1", environment="staging")
    assert dep.stable_version_id == "mv-churn-1" and dep.environment == "staging"


def test_rollback_reactivates_the_previous_version_and_is_recorded(host, ctx, ws, ids):
    from tether import audit
    from tether.plugins.rollout.state import active_deployment, advance, events, roll_back, serving_version

    first = start(host, ctx, "blue_green", "churn@1")
    advance(ws.store, first, "promote", {})
    canary = start(host, ctx, "canary", "churn@2", steps=[10, 100])
    back = roll_back(ws.store, canary, "error rate 12% > 1%", {"error_rate": 0.12})
    assert (back.strategy, back.state, back.model_version_id, back.weight) == ("rollback", "promoted", ids["mv1"], 100)
    assert back.details == {"replaces": canary.id, "reason": "error rate 12% > 1%"}
    live = active_deployment(ws.store, "production")
    assert live.id == back.id and serving_version(live) == ids["mv1"]
    assert [(e.action, e.to_state, e.evidence) for e in events(ws.store, canary.id)] == \
        [("rolled_back", "rolled_back", {"error_rate": 0.12})]
    entries = {e.action: e for e in audit.entries(ws.store) if e.subject in (canary.id, back.id)}
    assert entries["deployment.rolled_back"].subject == canary.id
    assert entries["deployment.rolled_back"].details["evidence"] == {"error_rate": 0.12}
    assert entries["deployment.reactivated"].details["replaces"] == canary.id
    assert (canary.id, "rolled_back_from") in {(e["parent"], e["relation"])
                                               for e in ws.store.lineage(back.id)["upstream"]}


def test_rollback_with_no_previous_version_is_a_clear_error(host, ctx, ws):
    from tether.plugins.rollout.state import advance, events, roll_back

    first = start(host, ctx, "blue_green", "churn@1")
    advance(ws.store, first, "promote", {})
    with pytest.raises(DeploymentError, match=r"deployment \S+ has no previous version to roll back to \(it is the "
                                              r"first deployment of mv-churn-1 in environment 'production'\)"):
        roll_back(ws.store, first, "bad")
    assert [e.action for e in events(ws.store, first.id)] == ["promoted"]  # nothing recorded for the refusal


def test_aborting_a_canary_leaves_the_stable_version_serving(host, ctx, ws, ids):
    from tether.plugins.rollout.state import abort, active_deployment, advance, serving_version

    first = start(host, ctx, "blue_green", "churn@1")
    advance(ws.store, first, "promote", {})
    canary = start(host, ctx, "canary", "churn@2")
    assert serving_version(active_deployment(ws.store, "production")) == ids["mv1"]
    serving = abort(ws.store, canary, "operator stopped it")
    assert serving.id == first.id and serving_version(serving) == ids["mv1"]
    # with an explicit stable version nobody deployed here, aborting re-activates it
    staged = start(host, ctx, "canary", "churn@2", stable="churn@1", environment="staging")
    back = abort(ws.store, staged, "stop")
    assert (back.strategy, back.model_version_id, back.environment) == ("rollback", ids["mv1"], "staging")


def test_records_written_before_strategies_existed_still_load(ws):
    from tether import serde
    from tether.plugins.rollout.state import current

    old = {"kind": "deployment", "schema_version": 1,
           "data": {"id": "deploy-0123456789abcdef", "model_version_id": "mv-churn-1", "target": "batch",
                    "status": "completed", "outputs": [], "location": "p.parquet", "details": {"rows": 3},
                    "created_at": "2026-01-01T00:00:00+00:00"}}
    record = serde.from_dict(old)
    assert (record.environment, record.strategy, record.state, record.weight) == ("", "", "", 0.0)
    ws.store.put(record)
    now = current(ws.store, ws.store.get(record.id, kind="deployment"))
    assert (now.strategy, now.state) == ("batch", "completed")


# --- the monitor's roll_back action calls the `previous` rollback backend -------------------------------


def test_the_monitors_roll_back_action_rolls_the_deployment_back(host, ctx, ws, ids):
    from tether.plugins.monitoring.triggers import roll_back as monitor_roll_back
    from tether.plugins.rollout.state import active_deployment, advance, current

    first = start(host, ctx, "blue_green", "churn@1")
    advance(ws.store, first, "promote", {})
    second = start(host, ctx, "blue_green", "churn@2")
    advance(ws.store, second, "promote", {})
    alerts = [{"rule": "drift", "action": "roll_back", "suppressed": False, "message": "drift share 0.8 > 0.5"}]
    result = monitor_roll_back({"plugin": "previous"}, second, alerts, backends=host.backends, context=ctx)
    assert result["status"] == "rolled_back" and result["reason"] == "drift share 0.8 > 0.5"
    assert current(ws.store, second).state == "rolled_back"
    assert active_deployment(ws.store, "production").model_version_id == ids["mv1"]
    assert active_deployment(ws.store, "production").id == result["deployment"]
    lone = start(host, ctx, "blue_green", "churn@1", environment="lonely")
    skipped = monitor_roll_back({"plugin": "previous"}, lone, alerts, backends=host.backends, context=ctx)
    assert skipped["status"] == "nothing_to_roll_back"  # the report says so; the monitor keeps its report
    assert current(ws.store, lone).state == "pending"
    with pytest.raises(DeploymentError, match="no previous version to roll back to"):
        monitor_roll_back({"plugin": "previous", "params": {"missing_ok": False}}, lone, alerts,
                          backends=host.backends, context=ctx)


def test_a_chain_deploy_stage_with_a_strategy_records_the_deployment_and_its_audit_entry(project, host, ids):
    from tether import audit
    from tether.config import load_chain
    from tether.runner import run_chain

    text = CHAIN.replace("CVALUE", "1.0") + """\
  - stage: deploy
    plugin: blue_green
    params: {environment: chain-env, fallback: {mode: recommend_only}}
"""
    (project / "chain.yaml").write_text(text)
    run, outputs = run_chain(load_chain(project / "chain.yaml", host), host)
    assert run.status == "succeeded", run.error
    dep = outputs["deploy"]
    assert (dep.strategy, dep.state, dep.environment, dep.fallback) == (
        "blue_green", "pending", "chain-env", {"mode": "recommend_only", "rule": None})
    with Workspace.open(host, project / ".tether") as ws:
        assert ws.store.get(dep.id, kind="deployment") == dep
        entry = [e for e in audit.entries(ws.store) if e.subject == dep.id]
        assert [e.action for e in entry] == ["deployment.started"] and entry[0].details["run"] == run.id


def test_a_decision_made_on_a_stale_view_fails_instead_of_both_applying(host, ctx, ws):
    from tether.plugins.rollout import state

    first = start(host, ctx, "blue_green", "churn@1")
    state.advance(ws.store, first, "promote", {})
    canary = start(host, ctx, "canary", "churn@2")
    stale = state.events(ws.store, canary.id)  # what a second router read before the first decided
    state.advance(ws.store, canary, "promote", {"router": 1})
    with pytest.raises(DeploymentError, match="changed while deciding 'roll_back'; read it again and retry"):
        state._append(ws.store, state.current(ws.store, canary, history=stale), stale, action="rolled_back",
                      decision="roll_back", to_state="rolled_back", evidence={"router": 2}, actor=None, reason="")
    assert [e.evidence for e in state.events(ws.store, canary.id)] == [{"router": 1}]


def test_a_monitor_alert_with_action_roll_back_rolls_a_chains_deployment_back(project, host, ctx, ws, ids):
    """End to end: a chain deploys churn@2 with batch scoring and monitors it; a drift alert
    with action roll_back calls the `previous` rollback backend, which re-activates churn@1."""
    from tether.config import load_chain
    from tether.plugins.rollout.state import active_deployment, current
    from tether.runner import run_chain

    snapshot = ws.store.get(ids["scoring"], kind="snapshot")
    start(host, ctx, "batch", "churn@1", snapshot)  # the version scoring before
    text = CHAIN.replace("CVALUE", "0.05") + """\
  - stage: deploy
    plugin: batch
    inputs: {snapshot: scoring}
  - stage: monitor
    plugin: drift
    inputs: {reference: customers, current: scoring, deployment: deploy}
    params:
      columns: [monthly_charges]
      health: {definitions: false}
      alerts:
        rules: [{name: price-drift, signal: drift.column.monthly_charges, above: 1, severity: critical,
                 action: roll_back}]
        sinks: [{plugin: log}]
        rollback: {plugin: previous}
"""
    (project / "chain.yaml").write_text(text)
    run, outputs = run_chain(load_chain(project / "chain.yaml", host), host)
    assert run.status == "succeeded", run.error
    deployed, report = outputs["deploy"], outputs["monitor"]
    assert deployed.model_version_id == ids["mv2"] and deployed.rollback_target == ids["mv1"]
    assert report.details["rollback"]["status"] == "rolled_back"
    with Workspace.open(host, project / ".tether") as fresh:
        assert current(fresh.store, fresh.store.get(deployed.id, kind="deployment")).state == "rolled_back"
        live = active_deployment(fresh.store, "batch")
        assert (live.id, live.strategy, live.model_version_id) == (report.details["rollback"]["deployment"],
                                                                   "rollback", ids["mv1"])
