"""`tether reproduce`: re-run a recorded chain run and say whether it reproduced, and if not why."""

from __future__ import annotations

import json

import attrs
import pytest
import tether
from tether.config import load_chain
from tether.runner import run_chain
from tether.workspace import Workspace
from tracking_helpers import make_project


@pytest.fixture
def recorded(tmp_path, host):
    """A project whose chain ran once: ``(project, run, outputs)``."""
    path = make_project(tmp_path)
    run, outputs = run_chain(load_chain(path, host), host)
    return tmp_path, run, outputs


def test_an_unchanged_run_reproduces_without_registering_anything(recorded, tether_cli, host):
    project, run, outputs = recorded
    (project / "chain.yaml").write_text("version: 1\nstages: []\n")  # the recorded text is what runs
    result = tether_cli("reproduce", run.id, "--json", cwd=project)
    assert result.exit_code == 0, result
    payload = json.loads(result.stdout)
    assert payload["reproduced"] is True and payload["ingredients"] == {}
    assert payload["artifacts"]["train"] == {"recorded": outputs["train"].artifact.digest,
                                             "new": outputs["train"].artifact.digest}
    with Workspace.open(host, project / ".tether") as ws:
        again = ws.store.get(payload["new_run"], kind="run")
        assert again.tags["reproduces"] == run.id
        assert [s.id for s in again.stages] == ["customers", "split", "featurize", "train", "evaluate"]
        assert again.stages[0].reason == "pinned" and all(s.reason.startswith("forced") for s in again.stages[1:])
        assert [mv.version for mv in ws.store.find("model_version", name="mini")] == [1]
    human = tether_cli("reproduce", run.id, cwd=project)
    assert human.exit_code == 0 and human.stdout.startswith(f"run {run.id}: reproduced")


def test_changed_code_and_versions_are_named_when_the_result_differs(recorded, tether_cli, host):
    project, run, outputs = recorded
    step = project / "epochs.py"
    step.write_text(step.read_text().replace("max_iter=500)", "max_iter=500, fit_intercept=False)"))
    env = run.environment
    doctored = attrs.evolve(run, code={**run.code, "git_commit": "0" * 40},
                            environment={**env, "packages": {**env["packages"], "scikit-learn": "0.0.1"}})
    with Workspace.open(host, project / ".tether") as ws:
        ws.store.put(doctored, replace=True)
    result = tether_cli("reproduce", run.id[:12], "--json", cwd=project)
    assert result.exit_code == 1, result
    payload = json.loads(result.stdout)
    assert payload["reproduced"] is False
    assert payload["artifacts"]["train"]["new"] != outputs["train"].artifact.digest
    assert "roc_auc" in payload["metrics"] or "log_loss" in payload["metrics"]
    ingredients = payload["ingredients"]
    assert "code.stage.train" in ingredients
    assert ingredients["environment.packages.scikit-learn"]["recorded"] == "0.0.1"
    assert ingredients["code.git_commit"]["recorded"] == "0" * 40
    assert "data.customers" not in ingredients
    last = result.stderr.strip().splitlines()[-1]  # after the chain's literal-secret warning
    assert last.startswith(f"tether: error: run {run.id} did not reproduce: ")
    assert "code.stage.train" in result.stderr


def test_altered_snapshot_data_is_named(recorded, tether_cli, host):
    project, run, outputs = recorded
    ref = outputs["customers"].objects[0]
    target = next((project / ".tether" / "objects").rglob(ref.key.split("/")[-1]))
    target.chmod(0o644)
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    result = tether_cli("reproduce", run.id, "--json", cwd=project)
    assert result.exit_code == 1, result
    ingredients = json.loads(result.stdout)["ingredients"]
    assert ingredients["data.customers"]["recorded"] == outputs["customers"].fingerprint
    assert ingredients["data.customers"]["now"].startswith("altered")


def test_bad_references_are_one_line_exit_2(recorded, tether_cli, host):
    project, run, _ = recorded
    missing = tether_cli("reproduce", "run-nope", cwd=project)
    assert missing.exit_code == 2 and missing.stderr.startswith("tether: error: no run 'run-nope'")
    with tether.start_run(name="notebook", workspace=project / ".tether", host=host) as api_run:
        api_run.log_metric("x", 1.0)
    no_chain = tether_cli("reproduce", api_run.id, cwd=project)
    assert no_chain.exit_code == 2 and "did not run a chain" in no_chain.stderr
    moved = attrs.evolve(run, chain_path=str(project / "gone" / "chain.yaml"))
    with Workspace.open(host, project / ".tether") as ws:
        ws.store.put(moved, replace=True)
    gone = tether_cli("reproduce", run.id, cwd=project)
    assert gone.exit_code == 2 and "is gone" in gone.stderr
    assert all(len(r.stderr.strip().splitlines()) == 1 for r in (missing, no_chain, gone))
