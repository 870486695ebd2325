"""A change and its audit entry are committed together or not at all, on SQLite (a real
file) and PostgreSQL (the real server): the entry's insert is refused by a trigger, or the
writing process is killed (SIGKILL) after the change is written and before its entry."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3

import pytest
from test_stores import PG_DSN, _params_of, store  # noqa: F401  # the parametrized sqlite/postgres fixture
from tether import audit
from tether.plugins.registry import state
from tether.plugins.registry.registry import register_version
from tether.plugins.rollout import state as rollout
from tether.records import Deployment, ModelVersion, ObjectRef, TrainedModel

KINDS = ("model_version", "model_transition", "model_alias", "model_approval", "deployment", "deployment_event",
         "audit_entry")
REFUSED = "audit entry refused"


def _model(n: int) -> TrainedModel:
    ref = ObjectRef(key=f"m/{n}.pkl", digest="blake3:" + f"{n:016x}" + "0" * 48, size=1)
    return TrainedModel(id=TrainedModel.id_for(ref), artifact=ref, framework="sklearn", estimator="X")


def _deployment(mv_id: str, stable: str | None, name: str) -> Deployment:
    return Deployment(id=name, model_version_id=mv_id, target="canary", status="active", environment="prod",
                      strategy="canary", state="active", steps=(5.0, 100.0), weight=5.0, stable_version_id=stable,
                      rollback_target=stable, actor="alice")


def _setup(store) -> Deployment:  # noqa: F811
    """Two versions of ``churn``, an alias ``old`` on v1 and a canary of v2: 4 entries."""
    for n in (1, 2):
        register_version(store, name="churn", model=_model(n), actor="alice")
    state.set_alias(store, state.resolve_ref(store, "churn@1"), "old", actor="alice")
    return rollout.record_start(store, _deployment("mv-churn-2", "mv-churn-1", "deploy-canary"),
                                parents=[("mv-churn-2", "model_version")])


OPERATIONS = {
    "register": lambda s, d: register_version(s, name="churn", model=_model(3), actor="alice"),
    "transition": lambda s, d: state.transition(s, state.resolve_ref(s, "churn@1"), "candidate", actor="alice"),
    "set_alias": lambda s, d: state.set_alias(s, state.resolve_ref(s, "churn@2"), "champion", actor="alice"),
    "remove_alias": lambda s, d: state.remove_alias(s, "churn", "old", actor="alice"),
    "request": lambda s, d: state.decide(s, state.resolve_ref(s, "churn@1"), "candidate", "request", actor="bob"),
    "deploy": lambda s, d: rollout.record_start(s, _deployment("mv-churn-1", None, "deploy-new"),
                                                parents=[("mv-churn-1", "model_version")], run_id="run-1"),
    "promote": lambda s, d: rollout.advance(s, d, "promote", actor="alice"),
    "roll_back": lambda s, d: rollout.roll_back(s, d, "error rate up", actor="alice"),
}


def _counts(store) -> dict[str, int]:  # noqa: F811
    return {kind: len(store.find(kind)) for kind in KINDS}


def _refuse_entries(store, refuse: bool) -> None:  # noqa: F811
    """Install (or drop) a trigger that makes every insert of an audit entry fail."""
    if store.name == "sqlite":
        with sqlite3.connect(store.file, isolation_level=None) as conn:
            conn.execute(f"CREATE TRIGGER refuse_audit BEFORE INSERT ON records WHEN NEW.kind = 'audit_entry' "
                         f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END" if refuse else "DROP TRIGGER refuse_audit")
        return
    import psycopg

    schema = _params_of(store)["schema"]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        if refuse:
            conn.execute(f"CREATE FUNCTION {schema}.refuse_audit() RETURNS trigger LANGUAGE plpgsql "
                         f"AS $$ BEGIN RAISE EXCEPTION '{REFUSED}'; END $$")
            conn.execute(f"CREATE TRIGGER refuse_audit BEFORE INSERT ON {schema}.records FOR EACH ROW "
                         f"WHEN (NEW.kind = 'audit_entry') EXECUTE FUNCTION {schema}.refuse_audit()")
        else:
            conn.execute(f"DROP TRIGGER refuse_audit ON {schema}.records")


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_change_whose_entry_fails_is_not_committed(store, operation):  # noqa: F811
    canary = _setup(store)
    before = _counts(store)
    assert before["audit_entry"] == 4
    _refuse_entries(store, True)
    with pytest.raises(Exception, match=REFUSED):
        OPERATIONS[operation](store, canary)
    assert _counts(store) == before  # neither the change nor its entry
    _refuse_entries(store, False)
    OPERATIONS[operation](store, canary)  # the same change goes through once entries are accepted
    after = _counts(store)
    changed = {kind for kind in KINDS if after[kind] != before[kind]}
    assert len(changed) >= 2 and "audit_entry" in changed
    entries = audit.entries(store)
    assert len(entries) == 4 + (2 if operation == "roll_back" else 1)
    assert audit.verify(store) == []


def _die_between_change_and_entry(plugin: str, params: dict, write: str) -> None:
    """Write a change whose audit entry is built by a callable that SIGKILLs this process:
    the change's record is written, its entry not yet."""
    from tether.manager import PluginHost

    opened = PluginHost(entry_points=False).backends.create("store", plugin, params)

    def die(record):
        os.kill(os.getpid(), signal.SIGKILL)

    if write == "put_versioned":
        audit.put_versioned(opened, lambda n: ModelVersion(id=f"mv-churn-{n}", name="churn", version=n,
                                                           model_id=f"model-{n}"),
                            die, kind="model_version", name="churn")
    else:
        audit.put(opened, _deployment("mv-churn-1", None, "deploy-killed"), die,
                  parents=[("mv-churn-1", "model_version")])
    raise SystemExit("the process was not killed")


@pytest.mark.parametrize("write", ["put_versioned", "put"])
def test_a_process_killed_between_change_and_entry_commits_neither(store, write):  # noqa: F811
    register_version(store, name="churn", model=_model(1), actor="alice")
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_die_between_change_and_entry, args=(store.name, _params_of(store), write))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL
    assert [v.id for v in store.find("model_version")] == ["mv-churn-1"]
    assert store.get("deploy-killed") is None and store.lineage("deploy-killed")["upstream"] == []
    assert [e.subject for e in audit.entries(store)] == ["mv-churn-1"]
    version, created = register_version(store, name="churn", model=_model(2), actor="alice")
    assert created and version.id == "mv-churn-2"  # the killed writer's version number was not used
    assert [e.subject for e in audit.entries(store)] == ["mv-churn-1", "mv-churn-2"]
    assert audit.verify(store) == []


def test_a_store_without_atomic_audit_writes_the_change_then_its_entry(tmp_path):
    """The documented fallback for a store written to the earlier contract."""
    from tether.plugins.sqlite_store.store import SQLiteStore

    class TwoStepStore(SQLiteStore):
        atomic_audit = False

    two_step = TwoStepStore(workspace=str(tmp_path))
    register_version(two_step, name="churn", model=_model(1), actor="alice")
    _refuse_entries(two_step, True)
    with pytest.raises(Exception, match=REFUSED):
        register_version(two_step, name="churn", model=_model(2), actor="alice")
    assert [v.version for v in two_step.find("model_version")] == [2, 1]  # committed without its entry
    assert [e.subject for e in audit.entries(two_step)] == ["mv-churn-1"]
    two_step.close()
