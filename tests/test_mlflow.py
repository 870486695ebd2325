"""The MLflow bridge, read back with ``MlflowClient`` from a local ``sqlite:///`` tracking
store: runs, params, metrics with steps, artifacts and tags mirrored as tether runs; the
registry (versions, statuses as tags, aliases) synced by the tracker and by
``tether mlflow sync``."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")
#: MLflow's own SQLAlchemy code warns about a loader SQLAlchemy 2.1 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

import tether  # noqa: E402
from tether.errors import ConfigError  # noqa: E402


@pytest.fixture
def uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _only_run(uri: str, experiment: str):
    client = _client(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_a_run_is_mirrored_with_params_metric_steps_artifacts_and_tags(tmp_path, uri):
    trackers = [{"plugin": "mlflow", "params": {"tracking_uri": uri}}]
    with tether.start_run(name="exp1", workspace=tmp_path / "ws", params={"C": 0.5, "grid": {"depth": [2, 4]}},
                          trackers=trackers) as run:
        for step in range(30):
            run.log_metrics({"loss": 1.0 / (step + 1), "roc_auc[region=north]": step / 100}, step=step)
        run.log_metric("final", 0.875)
        run.set_tags({"team": "risk"})
        run.note(hypothesis="a smaller C generalises")
        ref = run.log_artifact(b"model bytes", name="weights")
    assert run.record.tracker_errors == ()
    mirrored = _only_run(uri, "exp1")
    client = _client(uri)
    assert mirrored.info.status == "FINISHED" and mirrored.info.run_name == run.id
    assert mirrored.data.params == {"C": "0.5", "grid.depth": "[2, 4]"}
    tags = mirrored.data.tags
    assert (tags["tether.run_id"], tags["team"], tags["note.hypothesis"]) == (run.id, "risk",
                                                                              "a smaller C generalises")
    history = client.get_metric_history(mirrored.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(30)]
    assert mirrored.data.metrics["roc_auc_region_north"] == pytest.approx(0.29)
    assert mirrored.data.metrics["final"] == 0.875
    assert tags["tether.artifact.weights"] == ref.digest
    local = client.download_artifacts(mirrored.info.run_id, "tether/weights", str(tmp_path / "down"))
    with open(local, "rb") as fh:
        assert fh.read() == b"model bytes"
    # the metadata store (the store tracker is always on) has the same series
    from tether.manager import PluginHost
    from tether.workspace import Workspace

    ws = Workspace.open(PluginHost(entry_points=False), tmp_path / "ws")
    try:
        assert len(ws.store.get_metrics(run.id, "loss")) == 30
    finally:
        ws.close()


def test_a_failed_run_is_failed_in_mlflow(tmp_path, uri):
    with pytest.raises(RuntimeError, match="boom"), tether.start_run(
            name="exp2", workspace=tmp_path / "ws", trackers=[{"plugin": "mlflow", "params": {"tracking_uri": uri}}]):
        raise RuntimeError("boom")
    assert _only_run(uri, "exp2").info.status == "FAILED"


def test_the_tracking_uri_is_required(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ConfigError, match=r"trackers\[0\]\.params: tracking_uri is required"):
        tether.start_run(name="x", workspace=tmp_path / "ws", trackers=[{"plugin": "mlflow"}])


def test_an_unreachable_mlflow_is_reported_and_the_run_goes_on(tmp_path):
    bad = f"sqlite:///{tmp_path / 'missing-folder' / 'deeper' / 'mlflow.db'}"
    (tmp_path / "missing-folder").write_text("a file where a folder should be")
    with tether.start_run(name="exp3", workspace=tmp_path / "ws",
                          trackers=[{"plugin": "mlflow", "params": {"tracking_uri": bad}}]) as run:
        run.log_metric("loss", 0.5)
    assert run.record.status == "succeeded"
    (error,) = run.record.tracker_errors
    assert error.startswith("tracker 'mlflow': start_run:")


def _starter(tmp_path, tether_cli, uri: str):
    """The starter project, with the mlflow tracker added to its chain; run once."""
    made = tether_cli("init", "proj")
    assert made.exit_code == 0, made
    project = tmp_path / "proj"
    chain = (project / "chain.yaml").read_text()
    chain = chain.replace("stages:\n", f"trackers:\n  - {{plugin: mlflow, params: {{tracking_uri: '{uri}', "
                                       "experiment: starter}}\nstages:\n", 1)
    (project / "chain.yaml").write_text(chain)
    ran = tether_cli("run", "chain.yaml", cwd=project)
    assert ran.exit_code == 0, ran
    return project


def test_a_chain_run_and_its_registration_are_mirrored_and_synced(tmp_path, tether_cli, uri):
    project = _starter(tmp_path, tether_cli, uri)
    client = _client(uri)
    mirrored = _only_run(uri, "starter")
    assert mirrored.info.status == "FINISHED"
    assert mirrored.data.metrics["roc_auc"] > 0.6
    assert any(p.startswith("evaluate.") for p in mirrored.data.params)
    assert [f.path for f in client.list_artifacts(mirrored.info.run_id, "tether")]  # the trained model
    # the register stage created the MLflow version, linked to the mirrored run
    (version,) = client.search_model_versions("name = 'proj'")
    assert version.tags["tether.model_version_id"] == "mv-proj-1"
    assert version.tags["tether.status"] == "experimental" and version.run_id == mirrored.info.run_id

    def cli(*args):
        result = tether_cli(*args, cwd=project)
        assert result.exit_code == 0, result
        return result

    cli("models", "promote", "proj@1", "--to", "candidate", "--reason", "gates passed")
    cli("models", "alias", "proj@1", "champion")
    synced = json.loads(cli("mlflow", "sync", "--tracking-uri", uri, "--json").stdout)
    assert synced == [{"model": "proj", "version": 1, "mlflow_version": 1, "status": "candidate",
                       "aliases": ["champion"], "action": "updated"}]
    now = client.get_model_version("proj", "1")
    assert now.tags["tether.status"] == "candidate" and now.aliases == ["champion"]
    assert int(client.get_model_version_by_alias("proj", "champion").version) == 1
    again = json.loads(cli("mlflow", "sync", "--tracking-uri", uri, "--json").stdout)
    assert [row["action"] for row in again] == ["unchanged"]
    cli("models", "alias", "proj", "champion", "--remove")
    table = cli("mlflow", "sync", "--tracking-uri", uri).stdout
    assert "proj" in table and "updated" in table
    assert client.get_registered_model("proj").aliases == {}


def test_sync_creates_versions_in_order_and_refuses_unknown_models(tmp_path, tether_cli, uri):
    from tether.manager import PluginHost
    from tether.plugins.registry.registry import register_version
    from tether.records import ObjectRef, TrainedModel
    from tether.workspace import Workspace

    ws = Workspace.open(PluginHost(entry_points=False), tmp_path / ".tether")
    try:
        for i in range(3):
            ref = ObjectRef(key=f"m/{i}.pkl", digest="blake3:" + f"{i:x}" * 64, size=1)
            model = TrainedModel(id=TrainedModel.id_for(ref), artifact=ref, framework="sklearn", estimator="Dummy")
            register_version(ws.store, name="churn", model=model)
    finally:
        ws.close()
    synced = json.loads(tether_cli("mlflow", "sync", "--tracking-uri", uri, "--json").stdout)
    assert [(r["version"], r["mlflow_version"], r["action"]) for r in synced] == [(1, 1, "created"),
                                                                                  (2, 2, "created"),
                                                                                  (3, 3, "created")]
    found = _client(uri).search_model_versions("name='churn'")
    assert {int(v.version): v.tags["tether.model_version_id"] for v in found} == {
        1: "mv-churn-1", 2: "mv-churn-2", 3: "mv-churn-3"}
    unknown = tether_cli("mlflow", "sync", "churm", "--tracking-uri", uri)
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == "tether: error: no model named 'churm' in the workspace; did you mean 'churn'?"
    missing = tether_cli("mlflow", "sync", env={"MLFLOW_TRACKING_URI": ""})
    assert missing.exit_code == 2 and "--tracking-uri: required" in missing.stderr


def test_past_runs_are_mirrored_once_by_sync_runs(tmp_path, tether_cli, uri):
    with tether.start_run(name="offline", workspace=tmp_path / ".tether", params={"lr": 0.1}) as run:
        for step in range(5):
            run.log_metric("loss", 5.0 - step, step=step)
        run.note(decision="keep")
        ref = run.log_artifact(b"curve", name="curve")
    out = json.loads(tether_cli("mlflow", "sync", "--runs", "--tracking-uri", uri, "--json").stdout)
    assert out["models"] == [] and [(r["run"], r["action"]) for r in out["runs"]] == [(run.id, "created")]
    mirrored = _only_run(uri, "offline")
    client = _client(uri)
    assert mirrored.info.run_id == out["runs"][0]["mlflow_run"] and mirrored.info.status == "FINISHED"
    assert mirrored.data.params == {"lr": "0.1"} and mirrored.data.tags["note.decision"] == "keep"
    assert [(m.step, m.value) for m in client.get_metric_history(mirrored.info.run_id, "loss")] == [
        (s, 5.0 - s) for s in range(5)]
    assert mirrored.data.tags["tether.artifact.curve"] == ref.digest
    again = json.loads(tether_cli("mlflow", "sync", "--runs", "--tracking-uri", uri, "--json").stdout)
    assert [r["action"] for r in again["runs"]] == ["unchanged"]
    assert len(client.search_runs([client.get_experiment_by_name("offline").experiment_id])) == 1


@pytest.mark.parametrize(("key", "mlflow"), [("roc_auc[region=north]", "roc_auc_region_north"), ("train.C", "train.C"),
                                             ("a..b", "a._b"), ("loss/val: top 5", "loss/val: top 5")])
def test_keys_are_made_valid_for_mlflow(key, mlflow):
    from tether.contrib.mlflow.names import mlflow_key

    assert mlflow_key(key) == mlflow


def test_a_password_in_the_tracking_uri_is_never_shown(host):
    from tether.contrib.mlflow.names import display_uri

    uri = "http://bob:s3cret@mlflow.internal:5000"
    assert display_uri(uri) == "http://bob:***@mlflow.internal:5000"
    assert "s3cret" not in repr(host.backends.create("tracker", "mlflow", {"tracking_uri": uri}))
