"""Tracking: the Python API, the store tracker, what a chain run records, trackers that fail."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import textwrap

import pytest
import tether
from tether import serde
from tether.config import load_chain
from tether.errors import ConfigError, PluginError, StageError
from tether.records import Run
from tether.runner import run_chain
from tether.workspace import Workspace
from tracking_helpers import MemoryTracker, MemoryTrackerPlugin, make_project


@pytest.fixture
def memory_host(host):
    host.register(MemoryTrackerPlugin(), name="memory-tracker")
    return host


def stored(root, run_id, host):
    with Workspace.open(host, root) as ws:
        return ws.store.get(run_id, kind="run"), ws.store.get_metrics(run_id)


# --- the Python API --------------------------------------------------------------------------


def test_start_run_records_params_metrics_series_notes_tags_and_artifacts(tmp_path, host):
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01weights")
    with tether.start_run(name="sweep", workspace=tmp_path / "ws", params={"lr": 0.1, "opt": {"name": "adam"}},
                          tags={"team": "risk"}, host=host) as run:
        for step in range(5):
            run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 10}, step=step)
        run.log_metric("auc", 0.8)
        run.log_params({"batch": 32})
        run.set_tags({"stage": "dev"})
        run.note(hypothesis="adam beats sgd", decision="keep adam")
        blob = run.log_artifact(b"hello", name="greeting")
        weights = run.log_artifact(tmp_path / "weights.bin", name="weights")
    record, rows = stored(tmp_path / "ws", run.id, host)
    assert record.status == "succeeded" and record.chain == "sweep" and record.ended_at is not None
    assert record.params == {"lr": 0.1, "opt.name": "adam", "batch": 32}
    assert record.tags == {"team": "risk", "stage": "dev"}
    assert record.notes == {"hypothesis": "adam beats sgd", "decision": "keep adam"}
    assert record.artifacts == {"greeting": blob, "weights": weights}
    with Workspace.open(host, tmp_path / "ws") as ws:
        assert ws.storage.read_bytes(weights) == b"\x00\x01weights"
    assert record.metrics == {"loss": 0.2, "acc": 0.4, "auc": 0.8}
    loss = [(step, value) for key, value, step, _ in rows if key == "loss"]
    assert loss == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert record.environment["packages"]["tether"] == tether.__version__
    assert {"numpy", "pandas", "pyarrow", "scikit-learn", "scipy"} <= set(record.environment["packages"])


def test_a_block_that_raises_ends_the_run_failed_with_its_metrics_kept(tmp_path, host):
    with pytest.raises(RuntimeError, match="diverged"):
        with tether.start_run(name="boom", workspace=tmp_path, host=host) as run:
            run.log_metrics({"loss": float("nan")}, step=0)
            raise RuntimeError("loss diverged")
    record, rows = stored(tmp_path, run.id, host)
    assert record.status == "failed" and record.error == "RuntimeError: loss diverged"
    assert len(rows) == 1 and math.isnan(rows[0][1])


@pytest.mark.parametrize("call, message", [
    (lambda run: run.log_metrics({"loss": "low"}), "loss: expected a number"),
    (lambda run: run.log_metrics({"loss": True}), "loss: expected a number"),
    (lambda run: run.log_metrics({"loss": 1.0}, step=-1), "step must be a non-negative integer"),
    (lambda run: run.log_metrics([("loss", 1.0)]), "expected a mapping"),
    (lambda run: run.log_artifact(b"x", name="../escape"), "artifact name"),
    (lambda run: run.log_artifact("no/such/file", name="f"), "is not a file"),
    (lambda run: run.note(hypothesis=3), "hypothesis must be text"),
])
def test_bad_logging_calls_are_one_line_config_errors(tmp_path, host, call, message):
    with tether.start_run(name="bad", workspace=tmp_path, host=host) as run:
        with pytest.raises(ConfigError, match=message):
            call(run)


def test_metrics_are_buffered_and_flushed_at_the_size_threshold(tmp_path, host, monkeypatch):
    from tether import tracking

    monkeypatch.setattr(tracking, "FLUSH_ROWS", 10)
    monkeypatch.setattr(tracking, "FLUSH_SECONDS", 3600.0)
    run = tether.start_run(name="buffered", workspace=tmp_path, host=host)
    try:
        for step in range(9):
            run.log_metric("loss", float(step), step=step)
        assert stored(tmp_path, run.id, host)[1] == []  # held in memory
        run.log_metric("loss", 9.0, step=9)  # the 10th value: one transaction with all ten
        assert [row[2] for row in stored(tmp_path, run.id, host)[1]] == list(range(10))
        run.log_metric("loss", 10.0, step=10)
        run.flush()
        assert len(stored(tmp_path, run.id, host)[1]) == 11
    finally:
        run.end()


def test_a_run_left_open_is_flushed_and_ended_at_exit(tmp_path):
    script = textwrap.dedent(f"""
        import tether
        run = tether.start_run(name="script", workspace={str(tmp_path / "ws")!r})
        for i in range(3):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        print(run.id)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    with sqlite3.connect(tmp_path / "ws" / "tether.db") as conn:
        body = conn.execute("SELECT body FROM records WHERE id = ?", (run_id,)).fetchone()[0]
        count = conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    assert serde.loads(body).status == "succeeded" and count == 3


def test_an_uncaught_exception_ends_an_open_run_failed(tmp_path):
    script = textwrap.dedent(f"""
        import tether
        run = tether.start_run(name="script", workspace={str(tmp_path / "ws")!r})
        print(run.id, flush=True)
        raise SystemError("out of memory")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    with sqlite3.connect(tmp_path / "ws" / "tether.db") as conn:
        body = conn.execute("SELECT body FROM records WHERE id = ?", (proc.stdout.strip(),)).fetchone()[0]
    run = serde.loads(body)
    assert run.status == "failed" and run.error == "SystemError: out of memory"


def test_import_tether_stays_light_and_start_run_is_reached_lazily():
    code = ("import sys, tether; assert 'tether.tracking' not in sys.modules; "
            "f = tether.start_run; assert 'tether.tracking' in sys.modules; "
            "heavy = {'pandas', 'pyarrow', 'numpy', 'sklearn', 'scipy'} & set(sys.modules); "
            "assert not heavy, heavy; print(f.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "tether.tracking"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tether.nope  # noqa: B018


# --- the run record ---------------------------------------------------------------------------


def test_a_record_written_with_git_dirty_as_text_reads_it_as_a_boolean():
    # the body the previous release wrote: code values were all strings
    old = ('{"data":{"chain":"churn","chain_digest":"sha256:ab","code":{"git_commit":"4f2a","git_dirty":"false",'
           '"python":"3.11.7","tether":"0.1.0"},"config":"","ended_at":null,"error":null,"host":"h","id":"run-1",'
           '"pid":1,"process_started":null,"stages":[],"started_at":"2026-11-01T10:00:00+00:00",'
           '"status":"succeeded"},"kind":"run","schema_version":1}')
    run = serde.loads(old)
    assert run.code["git_dirty"] is False and run.metrics == {} and run.data == {}
    assert serde.loads(old.replace('"git_dirty":"false"', '"git_dirty":"true"')).code["git_dirty"] is True
    assert '"git_dirty":false' in serde.dumps(run)


def test_code_version_records_commit_branch_dirty_flag_and_diff_digest(tmp_path):
    import hashlib

    from tether.provenance import code_version

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, check=True).stdout

    git("init", "-q", "-b", "trunk")
    (tmp_path / "train.py").write_text("C = 1\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "first")
    clean = code_version(tmp_path)
    assert clean["git_dirty"] is False and clean["git_branch"] == "trunk" and "git_diff_sha256" not in clean
    assert clean["git_commit"] == git("rev-parse", "HEAD").decode().strip()
    (tmp_path / "train.py").write_text("C = 2\n")
    dirty = code_version(tmp_path)
    assert dirty["git_dirty"] is True
    assert dirty["git_diff_sha256"] == hashlib.sha256(git("diff", "HEAD", "--no-color", "--no-ext-diff")).hexdigest()


# --- chain runs ------------------------------------------------------------------------------


def test_a_chain_run_records_data_params_seeds_epochs_artifacts_and_evaluation_metrics(tmp_path, memory_host):
    path = make_project(tmp_path, "trackers:\n  - {plugin: memory}\n")
    sliced = "min: {roc_auc: 0.5}, slices: [{column: contract}]}"
    path.write_text(path.read_text().replace("min: {roc_auc: 0.5}}", sliced))
    chain = load_chain(path, memory_host)
    memory = chain.tracker_backends[0]
    run, outputs = run_chain(chain, memory_host)
    record, rows = stored(chain.workspace, run.id, memory_host)
    assert record == run and record.status == "succeeded"
    assert record.chain_path == str(path.resolve())
    snapshot, split = outputs["customers"], outputs["split"]
    assert record.data["customers"] == {"kind": "snapshot", "id": snapshot.id, "name": "customers",
                                        "fingerprint": snapshot.fingerprint, "rows": 1500}
    assert record.data["split"]["id"] == split.id and record.data["split"]["seed"] == 11
    expected_seeds = {"split.seed": 11, "train.random_state": 7}
    if outputs["evaluate"].bootstrap.get("seed") is not None:
        expected_seeds["evaluate.bootstrap_seed"] = outputs["evaluate"].bootstrap["seed"]
    assert record.seeds == expected_seeds
    assert record.params["train.C"] == 0.5 and record.params["evaluate.min.roc_auc"] == 0.5
    assert record.params["train.api_token"] == "***"
    assert "tok-literal-777" not in serde.dumps(record)
    assert record.artifacts["train"] == outputs["train"].artifact
    assert record.tags["output.register"] == "mv-mini-1"
    assert record.notes == {"hypothesis": "C=0.5 is enough"}
    assert record.metrics["roc_auc"] == outputs["evaluate"].metrics["roc_auc"]
    slices = {f"roc_auc[contract={s.segment}]": s.metrics["roc_auc"] for s in outputs["evaluate"].slices
              if "roc_auc" in s.metrics}
    assert slices and all(record.metrics[key] == value for key, value in slices.items())
    assert [(step, value) for key, value, step, _ in rows if key == "loss"] == [(e, 1.0 / (e + 1)) for e in range(4)]
    # the third-party tracker saw the same run
    methods = [call[0] for call in memory.calls]
    assert methods[0] == "start_run" and methods[-1] == "end_run" and memory.calls[-1] == ("end_run", "succeeded")
    assert ("log_metrics", {"loss": 0.25, "lr": 0.1}, 3) in memory.calls
    assert any(c[0] == "log_params" and c[1].get("train.C") == 0.5 for c in memory.calls)
    assert ("log_artifact", "train", outputs["train"].artifact.digest) in memory.calls
    assert ("set_tags", {"note.hypothesis": "C=0.5 is enough"}) in memory.calls
    assert ("log_model_version", "mv-mini-1", "experimental", ()) in memory.calls
    assert "flush" in methods


def test_a_failing_tracker_is_dropped_with_a_warning_and_the_run_record_stays_whole(tmp_path, memory_host):
    path = make_project(tmp_path, "trackers:\n  - {plugin: memory, params: {fail_in: log_metrics}}\n")
    chain = load_chain(path, memory_host)
    run, _ = run_chain(chain, memory_host)
    record, rows = stored(chain.workspace, run.id, memory_host)
    assert record.status == "succeeded"
    assert record.tracker_errors == ("tracker 'memory': log_metrics: ConnectionError: tracking server refused "
                                     "log_metrics",)
    assert len([r for r in rows if r[0] == "loss"]) == 4  # the store tracker kept everything
    calls = [c[0] for c in chain.tracker_backends[0].calls]
    assert calls.count("log_metrics") == 1 and "end_run" not in calls  # dropped after its first failure


def test_a_failing_tracker_with_on_error_fail_fails_the_run_naming_it(tmp_path, memory_host):
    path = make_project(tmp_path, "trackers:\n  - {plugin: memory, params: {fail_in: end_run}, on_error: fail}\n")
    chain = load_chain(path, memory_host)
    with pytest.raises(StageError, match="tracker 'memory': end_run: ConnectionError"):
        run_chain(chain, memory_host)
    with Workspace.open(memory_host, chain.workspace) as ws:
        record = ws.store.find("run", name="mini")[0]
    assert record.status == "failed" and "tracker 'memory': end_run" in record.error
    assert all(s.status == "succeeded" for s in record.stages) and record.metrics["roc_auc"] > 0.5


@pytest.mark.parametrize("trackers, message", [
    ("trackers: {plugin: memory}\n", "trackers: expected a list"),
    ("trackers:\n  - {plugin: memory, parms: {}}\n", "trackers[0]: unknown key 'parms'"),
    ("trackers:\n  - {plugin: memroy}\n", "trackers[0].plugin: unknown tracker plugin 'memroy'"),
    ("trackers:\n  - {plugin: store}\n", "trackers[0].plugin: the store tracker is always on"),
    ("trackers:\n  - {plugin: memory, on_error: ignore}\n", "trackers[0].on_error: expected 'warn' or 'fail'"),
    ("trackers:\n  - {plugin: memory, params: {fail_inn: x}}\n", "trackers[0].params: unknown parameter 'fail_inn'"),
    ("trackers:\n  - {plugin: memory, params: {fail_in: 3}}\n", "trackers[0].params.fail_in: expected str"),
])
def test_the_trackers_key_is_validated_with_key_paths(tmp_path, memory_host, trackers, message):
    path = make_project(tmp_path, trackers)
    with pytest.raises((ConfigError, PluginError)) as caught:
        load_chain(path, memory_host)
    assert message in str(caught.value)
    assert not (tmp_path / ".tether" / "tether.db").exists()


def test_a_store_without_metric_series_keeps_the_latest_values_in_the_run(tmp_path, host, monkeypatch):
    from tether.plugins.sql_records import SQLRecordStore

    def refuse(self, run_id, rows):
        raise NotImplementedError

    monkeypatch.setattr(SQLRecordStore, "put_metrics", refuse)
    with tether.start_run(name="plain", workspace=tmp_path, host=host) as run:
        run.log_metrics({"loss": 0.5}, step=0)
        run.log_metrics({"loss": 0.25}, step=1)
    with Workspace.open(host, tmp_path) as ws:
        assert ws.store.get(run.id).metrics == {"loss": 0.25}


def test_runs_show_json_has_the_record_and_series(tmp_path, host, tether_cli):
    with tether.start_run(name="curves", workspace=tmp_path / ".tether", host=host) as run:
        for step in range(3):
            run.log_metric("loss", 3.0 - step, step=step)
    shown = tether_cli("runs", "show", run.id, "--json")
    assert shown.exit_code == 0, shown
    payload = json.loads(shown.stdout)
    assert payload["run"]["data"]["id"] == run.id
    assert payload["series"]["loss"] == {"count": 3, "steps": "0..2", "min": 1.0, "max": 3.0, "last": 1.0}
    human = tether_cli("runs", "show", run.id)
    assert human.exit_code == 0 and "loss" in human.stdout and "0..2" in human.stdout


def test_a_run_record_round_trips_with_every_new_field(tmp_path, host):
    with tether.start_run(name="full", workspace=tmp_path, host=host, tags={"a": "b"}) as run:
        run.log_artifact(b"x", name="x")
        run.note(decision="ship")
    with Workspace.open(host, tmp_path) as ws:
        record = ws.store.get(run.id)
    assert isinstance(record, Run) and serde.loads(serde.dumps(record)) == record


@pytest.mark.parametrize("kwargs, error, message", [
    ({"name": "../up"}, ConfigError, "start_run: name"),
    ({"params": [1, 2]}, ConfigError, "start_run: params must be a mapping"),
    ({"trackers": [{"plugin": "memroy"}]}, PluginError, "trackers[0].plugin: unknown tracker plugin 'memroy'"),
    ({"trackers": [{"plugin": "memory", "params": {"fail_in": 1}}]}, ConfigError, "trackers[0].params.fail_in"),
])
def test_start_run_rejects_bad_arguments_before_writing_anything(tmp_path, memory_host, kwargs, error, message):
    with pytest.raises(error) as caught:
        tether.start_run(workspace=tmp_path / "ws", host=memory_host, **{"name": "ok", **kwargs})
    assert message in str(caught.value)
    assert not (tmp_path / "ws" / "tether.db").exists()


def test_start_run_feeds_a_tracker_given_in_python(tmp_path, memory_host):
    with tether.start_run(name="py", workspace=tmp_path, host=memory_host, params={"lr": 0.1},
                          trackers=[{"plugin": "memory"}]) as run:
        run.log_metrics({"loss": 0.5}, step=2)
    memory = run.trackers[1]
    assert isinstance(memory, MemoryTracker)
    assert [c[0] for c in memory.calls] == ["start_run", "log_params", "log_metrics", "flush", "end_run"]
    assert memory.calls[2] == ("log_metrics", {"loss": 0.5}, 2)


def test_a_tracker_dropped_mid_call_does_not_cost_the_next_one_that_call(tmp_path, memory_host):
    with tether.start_run(name="two", workspace=tmp_path, host=memory_host,
                          trackers=[{"plugin": "memory", "params": {"fail_in": "log_metrics"}},
                                    {"plugin": "memory"}]) as run:
        failing, healthy = run.trackers[1:]
        run.log_metrics({"loss": 0.5}, step=0)
        run.log_metrics({"loss": 0.4}, step=1)
    assert run.trackers[1:] == [healthy]
    assert [c for c in healthy.calls if c[0] == "log_metrics"] == [("log_metrics", {"loss": 0.5}, 0),
                                                                   ("log_metrics", {"loss": 0.4}, 1)]
    assert run.record.tracker_errors == ("tracker 'memory': log_metrics: ConnectionError: tracking server "
                                         "refused log_metrics",)
    assert failing.calls[-1][0] == "log_metrics"


def test_on_error_fail_in_a_step_fails_that_stage_naming_the_tracker(tmp_path, memory_host):
    path = make_project(tmp_path, "trackers:\n  - {plugin: memory, params: {fail_in: log_metrics}, on_error: fail}\n")
    chain = load_chain(path, memory_host)
    with pytest.raises(StageError, match=r"stages\[3\] \(train\): tracker 'memory': log_metrics"):
        run_chain(chain, memory_host)
    with Workspace.open(memory_host, chain.workspace) as ws:
        record = ws.store.find("run", name="mini")[0]
    assert record.status == "failed" and [s.status for s in record.stages][-1] == "failed"
    assert record.stages[-1].id == "train" and "tracker 'memory'" in record.error
    assert chain.tracker_backends[0].calls[-1] == ("end_run", "failed")
