"""The runner: records and lineage per stage, consistent failure, resume with --from."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import attrs
import pytest
from chains import customers_split_by_time
from tether.config import load_chain
from tether.errors import ConfigError, IntegrityError, StageError
from tether.runner import run_chain
from tether.workspace import Workspace

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn"

CHAIN = """\
version: 1
name: mini
stages:
""" + customers_split_by_time(3000) + """\
  - stage: featurize
    params: {label: churned, numeric: [tenure_months, monthly_charges], categorical: [contract]}
  - {step: "churn.train:fit"}
  - stage: evaluate
    plugin: classification
    params: {baseline: latest, model_name: mini, min: {roc_auc: MIN_AUC}}
  - stage: register
    params: {model_name: mini}
"""


@pytest.fixture
def project(tmp_path):
    shutil.copytree(EXAMPLE / "churn", tmp_path / "churn")
    return tmp_path


def write(project, text, min_auc=0.6):
    path = project / "chain.yaml"
    path.write_text(text.replace("MIN_AUC", str(min_auc)))
    return path


def test_every_stage_is_recorded_with_its_lineage(project, host):
    chain = load_chain(write(project, CHAIN), host)
    run, outputs = run_chain(chain, host)
    assert run.status == "succeeded"
    assert [s.status for s in run.stages] == ["succeeded"] * 6
    ws = Workspace.for_chain(chain, host)
    for stage in run.stages:
        assert ws.store.get(stage.output_id) == outputs[stage.id]
    assert ws.store.get(run.id, kind="run").status == "succeeded"
    up = ws.store.lineage("mv-mini-1")["upstream"]
    ancestors = {(e["kind"], e["parent"]) for e in up}
    assert ("snapshot", outputs["customers"].id) in ancestors
    assert ("split", outputs["split"].id) in ancestors
    assert ("features", outputs["featurize"].id) in ancestors
    assert ("model", outputs["fit"].id) in ancestors
    down = {e["child"] for e in ws.store.lineage(outputs["customers"].id)["downstream"]}
    assert {"mv-mini-1", outputs["evaluate"].id, outputs["fit"].id} <= down
    assert run.code["tether"] and run.code["python"]
    assert "churn.data:customers" in run.config


def test_versions_increment_and_baseline_is_the_latest_version(project, host):
    run_chain(load_chain(write(project, CHAIN), host), host)
    more_rows = load_chain(write(project, CHAIN.replace("rows: 3000", "rows: 3200")), host)
    _, outputs = run_chain(more_rows, host)
    assert outputs["register"].version == 2
    evaluation = outputs["evaluate"]
    assert evaluation.baseline_id == "mv-mini-1"
    assert set(evaluation.baseline_metrics) == set(evaluation.metrics)


def test_failed_gate_fails_the_run_and_writes_no_version(project, host):
    chain = load_chain(write(project, CHAIN, min_auc=0.999), host)
    with pytest.raises(StageError, match=r"stages\[5\] \(register\): model .* did not pass evaluation "
                                         r".*roc_auc .* below the minimum 0.999"):
        run_chain(chain, host)
    ws = Workspace.for_chain(chain, host)
    run = ws.store.find("run", name="mini")[0]
    assert run.status == "failed" and "did not pass" in run.error
    assert [s.status for s in run.stages][-1] == "failed"
    assert ws.store.find("model_version", name="mini") == []
    assert ws.store.get(run.stages[4].output_id).passed is False  # the evaluation itself is kept


def test_a_failing_stage_leaves_earlier_records_and_nothing_of_its_own(project, host):
    (project / "boom.py").write_text("def explode(features):\n    raise RuntimeError('training diverged')\n")
    text = CHAIN.replace('{step: "churn.train:fit"}', '{step: "boom:explode"}')
    chain = load_chain(write(project, text), host)
    with pytest.raises(StageError, match=r"stages\[3\] \(explode\): RuntimeError: training diverged"):
        run_chain(chain, host)
    db = project / ".tether" / "tether.db"
    with sqlite3.connect(db) as conn:
        kinds = sorted(k for (k,) in conn.execute("SELECT kind FROM records"))
        edges = conn.execute("SELECT COUNT(*) FROM edges").fetchone()[0]
    assert kinds == ["features", "run", "snapshot", "split"]
    assert edges == 3  # split<-snapshot, features<-snapshot, features<-split


def test_an_unchanged_chain_reuses_its_stages_and_registers_no_new_version(project, host):
    chain = load_chain(write(project, CHAIN), host)
    first, out1 = run_chain(chain, host)
    second, out2 = run_chain(chain, host)
    assert [(s.status, s.reason) for s in second.stages] == [
        ("succeeded", "reads its source")] + [("reused", "unchanged")] * 5
    assert [s.reason for s in first.stages] == ["reads its source"] + ["new"] * 5
    # only reusable stages are keyed; a snapshot's source is read by the stage, not hashed twice
    assert first.stages[0].key == {} and all(set(s.key) == {"config", "inputs", "code"} for s in first.stages[1:])
    for stage_id in ("customers", "split", "featurize", "fit", "evaluate", "register"):
        assert out2[stage_id].id == out1[stage_id].id
    ws = Workspace.for_chain(chain, host)
    assert [mv.version for mv in ws.store.find("model_version", name="mini")] == [1]


def test_a_changed_param_reruns_its_stage_and_what_depends_on_it(project, host):
    run_chain(load_chain(write(project, CHAIN), host), host)
    changed = CHAIN.replace("params: {time_column: event_ts}", "params: {time_column: event_ts, test: 0.2, "
                            "validation: 0.1, train: 0.7}")
    run, outputs = run_chain(load_chain(write(project, changed), host), host)
    reasons = {s.id: (s.status, s.reason) for s in run.stages}
    assert reasons["split"] == ("succeeded", "rerun: params changed")
    assert reasons["featurize"] == ("succeeded", "rerun: input changed")
    assert reasons["fit"] == ("succeeded", "rerun: input changed")
    assert outputs["split"].sizes["test"] == 600


def test_a_changed_step_source_reruns_the_step(project, host):
    import importlib
    import sys
    import uuid

    name = f"step_{uuid.uuid4().hex[:8]}"
    step = project / f"{name}.py"
    step.write_text("def train(features, context, params):\n    from churn.train import fit\n"
                    "    return fit(features, context, params)\n")
    chain = load_chain(write(project, CHAIN.replace('"churn.train:fit"', f'"{name}:train"')), host)
    run_chain(chain, host)
    step.write_text(step.read_text() + "# a comment changes the code digest\n")
    importlib.reload(sys.modules[name])
    run, _ = run_chain(chain, host)
    assert {s.id: s.reason for s in run.stages}["train"] == "rerun: code changed"


def test_from_and_force_rerun_unchanged_stages(project, host):
    chain = load_chain(write(project, CHAIN), host)
    _, out1 = run_chain(chain, host)
    second, out2 = run_chain(chain, host, from_stage="evaluate")
    assert [s.status for s in second.stages] == ["succeeded"] + ["reused"] * 3 + ["succeeded"] * 2
    assert [s.reason for s in second.stages][4:] == ["forced (--from evaluate)"] * 2
    assert out2["register"].id == out1["register"].id  # the identical model: no new version
    third, _ = run_chain(chain, host, force=True)
    assert all(s.status == "succeeded" for s in third.stages)
    assert {s.reason for s in third.stages} == {"forced (--force)"}


def test_from_without_an_earlier_run_runs_every_stage(project, host):
    chain = load_chain(write(project, CHAIN), host)
    run, _ = run_chain(chain, host, from_stage="evaluate")
    assert [s.status for s in run.stages] == ["succeeded"] * 6


def test_from_an_unknown_stage(project, host):
    chain = load_chain(write(project, CHAIN), host)
    with pytest.raises(ConfigError, match="no stage 'evalute'.*did you mean 'evaluate'"):
        run_chain(chain, host, from_stage="evalute")


def test_tampered_model_is_never_unpickled(project, host):
    chain = load_chain(write(project, CHAIN), host)
    _, outputs = run_chain(chain, host)
    ws = Workspace.for_chain(chain, host)
    model = outputs["fit"]
    path = ws.storage.local_path(model.artifact)
    payload = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(payload[:-8] + b"tampered")
    with pytest.raises(IntegrityError, match=model.artifact.key):
        ws.load_object(model.artifact)
    with pytest.raises(IntegrityError, match=r"stages\[4\] \(evaluate\): object .* does not match its recorded digest"):
        run_chain(chain, host, from_stage="evaluate")


def test_cli_stage_failure_is_one_line_exit_1(project, tether_cli):
    write(project, CHAIN, min_auc=0.999)
    result = tether_cli("run", "chain.yaml", cwd=project)
    assert result.exit_code == 1, result
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("tether: error: stages[5] (register): model ")
    assert "Traceback" not in result.stderr


def test_cli_run_json_and_runs_show(project, tether_cli):
    write(project, CHAIN)
    result = tether_cli("run", "chain.yaml", "--json", cwd=project)
    assert result.exit_code == 0, result
    payload = json.loads(result.stdout)
    run_id = payload["run"]["data"]["id"]
    assert payload["outputs"]["register"]["data"]["version"] == 1
    shown = tether_cli("runs", "show", run_id, cwd=project)
    assert shown.exit_code == 0 and "succeeded" in shown.stdout and "mv-mini-1" in shown.stdout
    listed = json.loads(tether_cli("runs", "ls", "--json", cwd=project).stdout)
    assert [r["data"]["id"] for r in listed] == [run_id]
    lineage = tether_cli("lineage", "mv-mini-1", cwd=project)
    assert lineage.exit_code == 0 and "<- snapshot snap-" in lineage.stdout
    missing = tether_cli("runs", "show", "run-nope", cwd=project)
    assert missing.exit_code == 2 and missing.stderr.startswith("tether: error: no run 'run-nope'")
    by_chain = tether_cli("runs", "show", "mini", cwd=project)  # a chain name: its latest run
    assert by_chain.exit_code == 0 and run_id in by_chain.stdout
    by_prefix = tether_cli("runs", "show", run_id[:12], cwd=project)
    assert by_prefix.exit_code == 0 and run_id in by_prefix.stdout
    table = tether_cli("show", "mv-mini-1", cwd=project)
    assert table.exit_code == 0 and table.stdout.splitlines()[1].split() == ["field", "value"]
    assert "version         1" in table.stdout
    as_json = json.loads(tether_cli("show", "mv-mini-1", "--json", cwd=project).stdout)
    assert as_json["kind"] == "model_version" and as_json["data"]["version"] == 1  # the envelope, as everywhere


def test_init_creates_a_runnable_starter(tmp_path, tether_cli):
    result = tether_cli("init", "proj")
    assert result.exit_code == 0, result
    project = tmp_path / "proj"
    assert {p.name for p in project.iterdir()} == {"chain.yaml", "train.py", "data.csv", ".tether"}
    ran = tether_cli("run", "chain.yaml", cwd=project)
    assert ran.exit_code == 0, ran
    assert "registered proj v1" in ran.stdout and "passed" in ran.stdout
    again = tether_cli("init", "proj")
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_a_killed_run_is_marked_crashed_with_what_it_completed(project, tether_cli):
    (project / "killer.py").write_text(
        "import os, signal\n\ndef die(split):\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    chain = CHAIN.split("  - stage: featurize")[0] + '  - {step: "killer:die"}\n'
    write(project, chain)
    result = tether_cli("run", "chain.yaml", cwd=project)
    assert result.exit_code == -9, result  # killed, nothing could mark the run
    with sqlite3.connect(project / ".tether" / "tether.db") as conn:
        (body,) = conn.execute("SELECT body FROM records WHERE kind = 'run'").fetchone()
    assert json.loads(body)["data"]["status"] == "running"
    listed = tether_cli("runs", "ls", "--json", cwd=project)
    assert listed.exit_code == 0, listed
    (envelope,) = json.loads(listed.stdout)
    run = envelope["data"]
    assert run["status"] == "crashed"
    assert "completed stages: customers, split" in run["error"]
    assert [s["status"] for s in run["stages"]] == ["succeeded", "succeeded"]
    shown = tether_cli("runs", "show", run["id"], cwd=project)
    assert "crashed" in shown.stdout


class _Payload:
    """A pickle that creates a file when loaded: what an attacker would store."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _repoint(db: Path, record_id: str, field: str, ref) -> None:
    """Rewrite one artifact reference inside a stored record, as a store writer could."""
    from tether import serde

    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT body FROM records WHERE id = ?", (record_id,)).fetchone()
        envelope = json.loads(body)
        envelope["data"][field] = serde.converter.unstructure(ref)
        conn.execute("UPDATE records SET body = ? WHERE id = ?", (json.dumps(envelope), record_id))


def test_a_record_repointed_at_a_malicious_pickle_is_refused(project, host):
    import pickle

    chain = load_chain(write(project, CHAIN), host)
    _, outputs = run_chain(chain, host)
    ws = Workspace.for_chain(chain, host)
    marker = project / "pwned"
    evil = ws.storage.put_bytes(pickle.dumps(_Payload(marker)), suffix=".pkl")
    _repoint(project / ".tether" / "tether.db", outputs["fit"].id, "artifact", evil)
    with pytest.raises(IntegrityError, match="record was altered; refusing to unpickle"):
        run_chain(chain, host, from_stage="evaluate")
    assert not marker.exists()


def test_with_a_signing_key_unsigned_artifacts_are_refused(project, host, monkeypatch):
    import pickle

    monkeypatch.setenv("TETHER_SIGNING_KEY", "k" * 32)
    chain = load_chain(write(project, CHAIN), host)
    _, outputs = run_chain(chain, host)
    features = outputs["featurize"]
    assert features.transform.signature.startswith("hmac-sha256:")
    ws = Workspace.for_chain(chain, host)
    assert ws.load_object(features.transform) is not None  # signed by this run
    marker = project / "pwned"
    evil = ws.storage.put_bytes(pickle.dumps(_Payload(marker)), suffix=".pkl")
    with pytest.raises(IntegrityError, match="is not signed, and TETHER_SIGNING_KEY is set"):
        ws.load_object(evil)
    forged = attrs.evolve(evil, signature=features.transform.signature)
    with pytest.raises(IntegrityError, match="signature that does not match"):
        ws.load_object(forged)
    monkeypatch.setenv("TETHER_SIGNING_KEY", "another-key-entirely")
    with pytest.raises(IntegrityError, match="signature that does not match"):
        ws.load_object(features.transform)
    assert not marker.exists()


def test_run_exit_code_follows_fail_on(tmp_path, tether_cli):
    shutil.copytree(EXAMPLE, tmp_path / "churn", ignore=shutil.ignore_patterns(".tether"))
    project = tmp_path / "churn"
    gated = tether_cli("run", "chain.yaml", cwd=project)
    assert gated.exit_code == 1, gated
    assert "verdict CRITICAL" in gated.stdout  # the summary is printed first
    (line,) = gated.stderr.strip().splitlines()
    assert line.startswith("tether: error: stage monitor (monitor mon-") and "--fail-on critical" in line
    relaxed = tether_cli("run", "chain.yaml", "--fail-on", "never", cwd=project)
    assert relaxed.exit_code == 0, relaxed
    assert tether_cli("runs", "ls", cwd=project).stdout.count("succeeded") == 2  # both runs succeeded
