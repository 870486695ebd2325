"""``tether deploy`` end to end through the real entry point: start, status, promote, abort,
rollback, ls and show, with model-version references and one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from deploy_helpers import CHAIN, build_project, copy_project


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy-cli-project")
    return root, build_project(root)


@pytest.fixture
def project(built, tmp_path):
    return copy_project(built[0], tmp_path)


def ok(result) -> str:
    assert result.exit_code == 0, result
    return result.stdout


def as_json(result):
    return json.loads(ok(result))


def test_a_blue_green_then_canary_rollout_and_its_rollback(project, tether_cli):
    first = as_json(tether_cli("deploy", "start", "churn@1", "-s", "blue_green", "-e", "prod", "--json"))["data"]
    assert (first["state"], first["environment"], first["model_version_id"]) == ("pending", "prod", "mv-churn-1")
    promoted = as_json(tether_cli("deploy", "promote", "prod", "--reason", "checks passed", "--json"))
    assert promoted["deployment"]["data"]["state"] == "promoted"

    out = ok(tether_cli("deploy", "start", "churn@2", "--strategy", "canary", "--env", "prod",
                        "-p", "steps=[10, 50, 100]", "-p", "sticky_key=customer_id", "-p", "analysis.min_requests=50"))
    assert "mv-churn-2 canary in 'prod', active, weight 10%, stable mv-churn-1" in out
    status = as_json(tether_cli("deploy", "status", "prod", "--json"))["prod"]["data"]
    assert (status["strategy"], status["weight"], status["sticky_key"]) == ("canary", 10.0, "customer_id")
    assert status["analysis"]["min_requests"] == 50
    canary_id = status["id"]
    assert as_json(tether_cli("deploy", "promote", canary_id, "--json"))["deployment"]["data"]["weight"] == 50.0

    table = ok(tether_cli("deploy", "status"))
    assert table.splitlines()[0].split()[:4] == ["deployment", "environment", "strategy", "state"]
    assert canary_id in table and "50%" in table

    rolled = as_json(tether_cli("deploy", "rollback", "prod", "--reason", "p95 latency 80ms > 50ms", "--json"))
    assert rolled["deployment"]["data"]["state"] == "rolled_back"
    assert rolled["serving"]["data"]["model_version_id"] == "mv-churn-1"
    assert as_json(tether_cli("deploy", "status", "prod", "--json"))["prod"]["data"]["strategy"] == "rollback"

    listed = as_json(tether_cli("deploy", "ls", "--env", "prod", "--json"))
    assert [d["data"]["state"] for d in listed] == ["promoted", "rolled_back", "promoted"]
    assert len(as_json(tether_cli("deploy", "ls", "--state", "rolled_back", "--json"))) == 1

    shown = ok(tether_cli("deploy", "show", canary_id))
    assert "advanced" in shown and "rolled_back" in shown and "p95 latency 80ms > 50ms" in shown
    history = as_json(tether_cli("deploy", "show", canary_id, "--json"))["events"]
    assert [e["data"]["action"] for e in history] == ["advanced", "rolled_back"]


def test_batch_scoring_from_the_command_line(project, tether_cli):
    from tether.manager import PluginHost
    from tether.workspace import Workspace

    with Workspace.open(PluginHost(entry_points=False), project / ".tether") as ws:
        snap = ws.store.find("snapshot", name="scoring")[0]
        ws.read_snapshot(snap).to_parquet(project / "batch.parquet")
    ok(tether_cli("models", "alias", "churn@2", "champion"))
    data = as_json(tether_cli("deploy", "start", "churn@champion", "-p", "source=batch.parquet",
                              "-p", "keep_columns=[customer_id, customer_id]", "-p", "batch_rows=40", "--json"))["data"]
    scored = pd.read_parquet(data["location"])
    assert list(scored.columns) == ["customer_id", "score", "prediction", "model_version"] and len(scored) == 300
    assert (data["strategy"], data["state"], data["environment"]) == ("batch", "completed", "batch")
    assert data["model_version_id"] == "mv-churn-2" and scored["model_version"].unique().tolist() == ["mv-churn-2"]


@pytest.mark.parametrize(("args", "message"), [
    (("deploy", "start", "churn@9", "-s", "blue_green"), "churn"),
    (("deploy", "start", "churn@1", "-s", "canary", "-p", "steps=[5, 3, 100]"),
     "params.steps[1]: steps must increase, got 3 after 5"),
    (("deploy", "start", "churn@1", "-s", "canery"), "unknown rollout plugin 'canery'; did you mean 'canary'?"),
    (("deploy", "start", "churn@1", "-p", "nokey"), "-p/--param: expected KEY=VALUE, got 'nokey'"),
    (("deploy", "start", "churn@1", "-s", "canary"), "a canary deployment needs a version serving environment"),
    (("deploy", "promote", "deploy-0000000000000000"), "no deployment 'deploy-0000000000000000'"),
    (("deploy", "status", "nowhere"), "no deployment governs environment 'nowhere'"),
])
def test_mistakes_are_one_line_errors(project, tether_cli, args, message):
    result = tether_cli(*args)
    assert result.exit_code == 2, result
    assert result.stderr.startswith("tether: error: ") and message in result.stderr, result
    assert "Traceback" not in result.stderr


def test_rolling_back_the_first_version_says_there_is_none(project, tether_cli):
    ok(tether_cli("deploy", "start", "churn@1", "-s", "blue_green", "-e", "prod"))
    ok(tether_cli("deploy", "promote", "prod"))
    result = tether_cli("deploy", "rollback", "prod")
    assert result.exit_code == 2, result
    assert "has no previous version to roll back to" in result.stderr
    ok(tether_cli("deploy", "start", "churn@2", "-s", "shadow", "-e", "prod"))
    result = tether_cli("deploy", "start", "churn@2", "-s", "canary", "-e", "prod")
    assert result.exit_code == 2 and "under way (shadow, active)" in result.stderr, result
    aborted = as_json(tether_cli("deploy", "abort", "prod", "--json"))
    assert aborted["deployment"]["data"]["state"] == "aborted"
    assert aborted["serving"]["data"]["model_version_id"] == "mv-churn-1"


def test_tether_run_with_a_canary_deploy_stage_summarizes_it(project, tether_cli):
    ok(tether_cli("deploy", "start", "churn@1", "-s", "blue_green", "-e", "prod"))
    ok(tether_cli("deploy", "promote", "prod"))
    text = CHAIN.replace("CVALUE", "0.05") + """\
  - stage: deploy
    plugin: canary
    params: {environment: prod, steps: [20, 100], sticky_key: customer_id}
"""
    (project / "chain.yaml").write_text(text)
    out = ok(tether_cli("run", "chain.yaml", env={"PYTHONPATH": str(project)}))
    assert "canary in 'prod': active, weight 20%" in out
    status = as_json(tether_cli("deploy", "status", "prod", "--json"))["prod"]["data"]
    assert (status["model_version_id"], status["stable_version_id"]) == ("mv-churn-2", "mv-churn-1")
