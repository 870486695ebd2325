"""``tether models``, ``tether audit`` and ``tether lineage`` from the command line: tables,
JSON, and every mistake a one-line error with nothing lost."""

from __future__ import annotations

import json

import pytest
from registry_helpers import estimator


@pytest.fixture
def project(tmp_path, tether_cli):
    """The starter project, run once: snapshot -> split -> features -> model -> evaluation -> mv-proj-1."""
    assert tether_cli("init", "proj").exit_code == 0
    project = tmp_path / "proj"
    ran = tether_cli("run", "chain.yaml", cwd=project)
    assert ran.exit_code == 0, ran
    return project


@pytest.fixture
def models_ws(tmp_path, host):
    """A workspace with churn v1..v3 registered from Python."""
    from tether.plugins.registry.api import register_model
    from tether.workspace import Workspace

    with Workspace.open(host, tmp_path / ".tether") as ws:
        for c in (1.0, 2.0, 3.0):
            register_model(ws, "churn", estimator(c), owner="risk-team", intended_use="outreach")
    return tmp_path


def test_promote_alias_ls_show_and_history(models_ws, tether_cli):
    def run(*args):
        result = tether_cli(*args, cwd=models_ws)
        assert result.exit_code == 0, result
        return result.stdout

    assert "experimental -> candidate" in run("models", "promote", "churn@2", "--to", "candidate", "--reason", "ok")
    assert "churn@champion -> mv-churn-2" in run("models", "alias", "churn@2", "champion")
    listed = run("models", "ls")
    assert listed.splitlines()[0].split() == ["model", "versions", "latest", "statuses", "aliases"]
    assert "churn  3" in listed and "champion->v2" in listed
    versions = run("models", "ls", "churn")
    assert [line.split()[0] for line in versions.splitlines()[1:]] == ["3", "2", "1"]
    shown = run("models", "show", "churn@champion")
    assert "status         candidate" in shown and "owner          risk-team" in shown
    card = json.loads(run("models", "show", "churn@champion", "--json"))
    assert card["status"] == "candidate" and card["aliases"] == ["champion"]
    assert card["model_version"]["data"]["id"] == "mv-churn-2"
    history = json.loads(run("models", "history", "churn", "--json"))
    assert {(h["version"], h["what"], h["value"]) for h in history if h["to"] is None} == {
        (1, "status", "experimental"), (2, "status", "candidate"), (3, "status", "experimental"),
        (2, "alias", "champion")}
    today = history[0]["from"][:10]
    now = run("models", "history", "churn", "--at", today)
    assert "candidate" in now and "champion" in now
    assert "nothing held" in run("models", "history", "churn", "--at", "2001-01-01")
    audit = run("audit", "ls")
    assert "model.transition" in audit and "model.alias" in audit
    assert "audit log intact: 5 entries" in run("audit", "verify")


def test_request_approve_and_reject_from_the_command_line(models_ws, tether_cli):
    (models_ws / ".tether" / "policy.yaml").write_text(
        "registry:\n  approvals:\n    production: {approvers: [alice, bob], count: 1}\n")

    def run(*args, actor="dave"):
        return tether_cli(*args, cwd=models_ws, env={"TETHER_ACTOR": actor})

    assert run("models", "promote", "churn@1", "--to", "candidate").exit_code == 0
    refused = run("models", "promote", "churn@1", "--to", "production")
    assert refused.exit_code == 2 and refused.stderr.startswith(
        "tether: error: refused by registry.approvals.production")
    assert run("models", "request", "churn@1", "--to", "production", "--reason", "ready").exit_code == 0
    outsider = run("models", "approve", "churn@1", actor="eve")
    assert outsider.exit_code == 2 and "'eve' is not an approver" in outsider.stderr
    approved = run("models", "approve", "churn@1", actor="alice")  # --to inferred: the only open request
    assert approved.exit_code == 0 and "approve production by alice" in approved.stdout, approved
    shown = run("models", "show", "churn@1")
    assert "requested by dave; approved by alice" in shown.stdout
    assert run("models", "promote", "churn@1", "--to", "production").exit_code == 0
    assert run("models", "show", "churn@production").stdout.count("mv-churn-1") == 1
    no_reason = run("models", "reject", "churn@1", "--to", "production", actor="bob")
    assert no_reason.exit_code == 2 and "tether: error:" in no_reason.stderr


BAD_INPUT = [
    (("models", "show", "chrun@champion"), "no model 'chrun'; did you mean 'churn'?"),
    (("models", "show", "churn@champ"), "model 'churn' has no alias 'champ'"),
    (("models", "show", "churn@7"), "model 'churn' has no version 7"),
    (("models", "promote", "churn@1", "--to", "production"), "refused by registry.transitions"),
    (("models", "promote", "churn@1", "--to", "prod"), "Invalid value for '--to'"),
    (("models", "alias", "churn@1", "production"), "'production' is a status, not an alias name"),
    (("models", "alias", "churn@3", "champion"), "is held by mv-churn-2; pass --move"),
    (("models", "alias", "churn@1", "nope", "--remove"), "model 'churn' has no alias 'nope'"),
    (("models", "approve", "churn@1"), "has no open requests; pass --to STATUS"),
    (("models", "history", "churn", "--at", "yesterday"), "--at: expected a date"),
    (("models", "history", "chrun"), "did you mean 'churn'"),
    (("lineage", "churn@champ"), "no alias 'champ'"),
    (("audit", "verify", "--workspace", "no/such/dir/../x", "--expect-head", "00"), "expected"),
]


def test_bad_input_is_one_line_and_changes_nothing(models_ws, tether_cli):
    assert tether_cli("models", "alias", "churn@2", "champion", cwd=models_ws).exit_code == 0
    before = tether_cli("audit", "ls", "--json", cwd=models_ws).stdout
    for args, message in BAD_INPUT:
        result = tether_cli(*args, cwd=models_ws)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tether: error: ") and message in lines[0], (args, result)
        assert result.exit_code == (1 if args[0] == "audit" else 2), (args, result)
    assert tether_cli("audit", "ls", "--json", cwd=models_ws).stdout == before  # nothing written
    assert tether_cli("audit", "verify", cwd=models_ws).exit_code == 0


def test_lineage_upstream_prints_shared_ancestors_once_with_their_runs(project, tether_cli):
    up = tether_cli("lineage", "proj@1", "--upstream", cwd=project)
    assert up.exit_code == 0, up
    lines = up.stdout.splitlines()
    assert lines[0].startswith("model_version mv-proj-1  (run run-")
    snapshot_lines = [line for line in lines if "<- snapshot snap-" in line]
    assert len(snapshot_lines) >= 2  # reached through the split and through the features
    assert sum("shown above" not in line for line in snapshot_lines) == 1  # expanded once
    assert "used by:" not in up.stdout
    assert any(line.startswith("  run run-") and "chain proj" in line for line in lines)
    graph = json.loads(tether_cli("lineage", "mv-proj-1", "--upstream", "--json", cwd=project).stdout)
    kinds = {node["kind"] for node in graph["nodes"].values()}
    assert {"snapshot", "split", "features", "model", "evaluation", "model_version"} <= kinds
    produced = [e for e in graph["edges"] if e["relation"] == "produced"]
    assert produced and all(e["parent"] in graph["runs"] for e in produced)  # runs are nodes


def test_lineage_downstream_of_a_snapshot_lists_model_versions_and_deployments(project, tether_cli, host):
    from tether.plugins.registry.api import register_model
    from tether.records import Deployment
    from tether.workspace import Workspace

    with Workspace.open(host, project / ".tether") as ws:
        snapshot = ws.store.find("snapshot")[0]
        mv = ws.store.get("mv-proj-1")
        ws.store.put(Deployment(id="deploy-a", model_version_id=mv.id, target="batch", status="completed"),
                     parents=[(mv.id, "model_version")])
        ws.store.put(Deployment(id="deploy-b", model_version_id=mv.id, target="batch", status="completed"))
        register_model(ws, "other", estimator())  # unrelated to the snapshot
    down = tether_cli("lineage", snapshot.id, "--downstream", cwd=project)
    assert down.exit_code == 0, down
    assert "made from:" not in down.stdout
    assert "  model versions: mv-proj-1" in down.stdout
    assert "  deployments: deploy-a, deploy-b" in down.stdout  # deploy-b has no edge, only its model version
    graph = json.loads(tether_cli("lineage", snapshot.id, "--downstream", "--json", cwd=project).stdout)
    assert graph["model_versions"] == ["mv-proj-1"] and graph["deployments"] == ["deploy-a", "deploy-b"]


def test_the_register_stage_takes_model_card_fields_and_checks_them_before_the_run(project, tether_cli):
    chain = project / "chain.yaml"
    text = chain.read_text()
    assert "{stage: register, params: {model_name: proj}}" in text
    chain.write_text(text.replace("{model_name: proj}", "{model_name: proj, owner: risk-team, "
                                  "limitations: [not for new customers], license: MIT, force: true}"))
    ran = tether_cli("run", "chain.yaml", "--force", cwd=project)
    assert ran.exit_code == 0, ran
    card = json.loads(tether_cli("models", "show", "proj", "--json", cwd=project).stdout)
    data = card["model_version"]["data"]
    assert data["version"] == 2  # force: the identical model is added again
    assert (data["owner"], data["limitations"], data["license"]) == ("risk-team", ["not for new customers"], "MIT")
    assert data["run_id"].startswith("run-") and data["snapshot_id"].startswith("snap-")
    chain.write_text(text.replace("{model_name: proj}", "{model_name: proj, licence: MIT}"))
    bad = tether_cli("run", "chain.yaml", cwd=project)
    assert bad.exit_code == 2 and "licence" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad
    assert len(json.loads(tether_cli("models", "ls", "proj", "--json", cwd=project).stdout)) == 2
