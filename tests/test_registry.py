"""The model registry: immutable versions with model cards, gapless numbering and dedupe,
statuses under a policy, approvals, aliases, reference forms and history."""

from __future__ import annotations

import attrs
import pytest
from registry_helpers import estimator, evaluation, fixed_clock, write_policy
from tether import audit, serde
from tether.errors import ConfigError, NotFoundError, TetherError
from tether.plugins.registry import api, state
from tether.plugins.registry.history import at, history, parse_when
from tether.plugins.registry.policy import PolicyError
from tether.records import ModelVersion

# --- registering --------------------------------------------------------------------------------


def test_versions_are_numbered_without_gaps_and_an_identical_artifact_is_not_added_again(workspace):
    first = api.register_model(workspace, "churn", estimator(1.0))
    again = api.register_model(workspace, "churn", estimator(1.0))
    second = api.register_model(workspace, "churn", estimator(2.0))
    forced = api.register_model(workspace, "churn", estimator(2.0), force=True)
    assert (first.id, again.id, second.id, forced.id) == ("mv-churn-1", "mv-churn-1", "mv-churn-2", "mv-churn-3")
    assert forced.model_id == second.model_id
    # only the versions actually added are in the audit log
    assert [(e.action, e.subject) for e in audit.entries(workspace.store)] == [
        ("model.registered", "mv-churn-1"), ("model.registered", "mv-churn-2"), ("model.registered", "mv-churn-3")]
    assert audit.entries(workspace.store)[2].details["forced"] is True


def test_only_the_latest_version_is_compared_for_dedupe(workspace):
    api.register_model(workspace, "churn", estimator(1.0))
    api.register_model(workspace, "churn", estimator(2.0))
    back = api.register_model(workspace, "churn", estimator(1.0))  # v1's artifact again, after v2
    assert back.version == 3


def test_the_model_card_is_stored_with_the_version(workspace, monkeypatch):
    monkeypatch.setenv("TETHER_ACTOR", "alice")
    mv = api.register_model(workspace, "churn", estimator(), intended_use="monthly outreach",
                            limitations=["not for new customers", "EU only"], owner="risk-team", license="MIT",
                            description="baseline")
    stored = workspace.store.get(mv.id, kind="model_version")
    assert stored == mv
    assert (stored.intended_use, stored.limitations, stored.owner, stored.license) == (
        "monthly outreach", ("not for new customers", "EU only"), "risk-team", "MIT")
    assert stored.registered_by == "alice" and stored.status == "experimental"
    assert workspace.store.lineage(mv.id)["upstream"][0]["parent"] == mv.model_id


def test_bad_registration_input_is_refused_before_anything_is_written(workspace):
    with pytest.raises(ConfigError, match="unknown model-card field 'licence'; did you mean 'license'"):
        api.register_model(workspace, "churn", estimator(), licence="MIT")
    with pytest.raises(ConfigError, match="model name"):
        api.register_model(workspace, "../etc", estimator())
    with pytest.raises(ConfigError, match="limitations\\[1\\]: expected text"):
        api.register_model(workspace, "churn", estimator(), limitations=["ok", 3])
    with pytest.raises(NotFoundError, match="no evaluation 'eval-nope'"):
        api.register_model(workspace, "churn", estimator(), evaluation="eval-nope")
    assert workspace.store.find("model_version") == [] and audit.entries(workspace.store) == []


def test_a_registered_version_cannot_be_replaced(workspace):
    mv = api.register_model(workspace, "churn", estimator())
    altered = attrs.evolve(mv, model_id="model-forged", metrics={"roc_auc": 0.99})
    with pytest.raises(TetherError):
        workspace.store.put(altered, replace=True)
    workspace.store.put(altered)  # a plain put of an existing id keeps the stored record
    assert workspace.store.get(mv.id, kind="model_version") == mv


def test_status_changes_leave_the_version_record_untouched(workspace):
    mv = api.register_model(workspace, "churn", estimator())
    body = serde.dumps(workspace.store.get(mv.id))
    api.promote(workspace, "churn@1", "candidate")
    api.set_alias(workspace, "churn@1", "champion")
    assert serde.dumps(workspace.store.get(mv.id)) == body
    assert state.status_of(workspace.store, mv) == "candidate"


def test_a_legacy_registered_version_reads_as_experimental(workspace):
    legacy = ModelVersion(id="mv-old-1", name="old", version=1, model_id="model-1", status="registered")
    workspace.store.put(legacy)
    assert state.status_of(workspace.store, legacy) == "experimental"
    assert workspace.resolve("old@experimental", kind="model_version").id == "mv-old-1"
    moved = api.promote(workspace, "old@1", "candidate")
    assert (moved.from_status, moved.to_status) == ("experimental", "candidate")


# --- transitions ------------------------------------------------------------------------------


def test_the_default_lifecycle_runs_from_experimental_to_archived(workspace):
    mv = api.register_model(workspace, "churn", estimator())
    for to in ("candidate", "production", "deprecated", "archived"):
        api.promote(workspace, "churn@1", to, reason=f"to {to}")
    assert state.status_of(workspace.store, mv) == "archived"
    assert [t.to_status for t in state.load(workspace.store, "churn").transitions] == [
        "candidate", "production", "deprecated", "archived"]
    with pytest.raises(PolicyError, match="refused by registry.transitions .*archived -> candidate is not allowed "
                                          "\\(from archived: nothing; it is final\\)"):
        api.promote(workspace, "churn@1", "candidate")


def test_a_transition_the_policy_does_not_allow_is_refused_naming_the_rule(workspace):
    api.register_model(workspace, "churn", estimator())
    with pytest.raises(PolicyError) as caught:
        api.promote(workspace, "churn@1", "production")
    assert str(caught.value) == ("refused by registry.transitions (the default policy): experimental -> production "
                                 "is not allowed (from experimental: candidate, archived)")
    with pytest.raises(PolicyError, match="already experimental"):
        api.promote(workspace, "churn@1", "experimental")
    with pytest.raises(ConfigError, match="unknown status 'prod'; did you mean 'production'"):
        api.promote(workspace, "churn@1", "prod")
    assert state.load(workspace.store, "churn").transitions == []
    assert [e.action for e in audit.entries(workspace.store)] == ["model.registered"]


def test_a_workspace_policy_file_sets_the_allowed_transitions(workspace):
    write_policy(workspace, "registry:\n  transitions:\n    experimental: [production]\n")
    api.register_model(workspace, "churn", estimator())
    with pytest.raises(PolicyError, match="policy.yaml\\): experimental -> candidate is not allowed"):
        api.promote(workspace, "churn@1", "candidate")
    assert api.promote(workspace, "churn@1", "production").to_status == "production"
    with pytest.raises(PolicyError, match="production -> deprecated is not allowed \\(from production: nothing"):
        api.promote(workspace, "churn@1", "deprecated")  # statuses the file leaves out allow nothing


@pytest.mark.parametrize(("text", "message"), [
    ("registry:\n  transitions:\n    experimental: [prod]\n",
     "registry.transitions.experimental\\[0\\]: unknown status 'prod'; did you mean 'production'"),
    ("registry:\n  gate: [production]\n", "registry: unknown key 'gate'; did you mean 'gates'"),
    ("registry:\n  approvals:\n    production: {approvers: [alice], count: 2}\n",
     "registry.approvals.production.count: 2 approvals can never come from 1 approvers"),
    ("registry:\n  approvals:\n    production: {count: 0}\n", "approvals.production.count: expected a whole number"),
    ("registry:\n  self_approval: 'yes'\n", "registry.self_approval: expected true or false"),
    ("registy: {}\n", "unknown section 'registy'; did you mean 'registry'"),
    ("registry: [\n", "invalid YAML"),
])
def test_a_malformed_policy_file_is_a_one_line_error_naming_the_key(workspace, text, message):
    write_policy(workspace, text)
    api.register_model(workspace, "churn", estimator())
    with pytest.raises(ConfigError, match=message) as caught:
        api.promote(workspace, "churn@1", "candidate")
    assert "\n" not in str(caught.value)
    assert state.load(workspace.store, "churn").transitions == []


def test_a_failed_evaluation_keeps_a_version_experimental_unless_an_override_is_justified(workspace):
    failed = evaluation(workspace.store, "bad", passed=False)
    mv = api.register_model(workspace, "churn", estimator(), evaluation=failed)
    with pytest.raises(PolicyError, match=f"refused by registry.gates .*{mv.id} cannot become candidate: its "
                                          "evaluation eval-bad failed"):
        api.promote(workspace, "churn@1", "candidate")
    with pytest.raises(PolicyError, match="needs a --reason"):
        api.promote(workspace, "churn@1", "candidate", override=True)
    moved = api.promote(workspace, "churn@1", "candidate", override=True, reason="gate metric is known-broken")
    assert moved.override is True and moved.reason == "gate metric is known-broken"
    entry = audit.entries(workspace.store)[-1]
    assert entry.action == "model.transition" and entry.details["override"] is True
    # archiving needs no gate
    assert api.promote(workspace, "churn@1", "archived").override is False


def test_a_passed_evaluation_opens_the_gate_and_require_evaluation_closes_it_for_none(workspace):
    good = evaluation(workspace.store, "good", passed=True)
    api.register_model(workspace, "churn", estimator(1.0), evaluation=good)
    assert api.promote(workspace, "churn@1", "candidate").override is False
    api.register_model(workspace, "churn", estimator(2.0))  # no evaluation: allowed by default
    assert api.promote(workspace, "churn@2", "candidate").to_status == "candidate"
    write_policy(workspace, "registry:\n  require_evaluation: true\n")
    api.register_model(workspace, "churn", estimator(3.0))
    with pytest.raises(PolicyError, match="it has no evaluation \\(require_evaluation is set\\)"):
        api.promote(workspace, "churn@3", "candidate")


# --- approvals ---------------------------------------------------------------------------------

APPROVALS = """\
registry:
  approvals:
    production: {approvers: [alice, bob, carol], count: 2}
"""


def _as(monkeypatch, who: str) -> None:
    monkeypatch.setenv("TETHER_ACTOR", who)


def _decide(workspace, ref: str, action: str, **kwargs):
    from tether.plugins.registry.policy import load_policy

    mv = state.resolve_ref(workspace.store, ref)
    return state.decide(workspace.store, mv, "production", action, policy=load_policy(workspace.root), **kwargs)


def test_production_needs_the_required_approvals(workspace, monkeypatch):
    write_policy(workspace, APPROVALS)
    api.register_model(workspace, "churn", estimator())
    api.promote(workspace, "churn@1", "candidate")
    with pytest.raises(PolicyError, match="refused by registry.approvals.production .*needs 2 approval\\(s\\) to "
                                          "become production and has no open request"):
        api.promote(workspace, "churn@1", "production")
    _as(monkeypatch, "dave")
    request = _decide(workspace, "churn@1", "request", reason="beats v0 on holdout")
    _as(monkeypatch, "eve")
    with pytest.raises(PolicyError, match="'eve' is not an approver \\(approvers: alice, bob, carol\\)"):
        _decide(workspace, "churn@1", "approve")
    _as(monkeypatch, "alice")
    first = _decide(workspace, "churn@1", "approve", reason="metrics look right")
    with pytest.raises(PolicyError, match="'alice' already decided"):
        _decide(workspace, "churn@1", "approve")
    with pytest.raises(PolicyError, match="needs 2 approval\\(s\\) from alice, bob, carol to become production; "
                                          "has 1 \\(alice\\)"):
        api.promote(workspace, "churn@1", "production")
    _as(monkeypatch, "bob")
    second = _decide(workspace, "churn@1", "approve")
    moved = api.promote(workspace, "churn@1", "production", reason="approved")
    assert moved.approvals == tuple(sorted((first.id, second.id))) and moved.actor == "bob"
    assert request.action == "request" and request.actor == "dave"
    actions = [(e.action, e.actor) for e in audit.entries(workspace.store)][-4:]
    assert actions == [("model.request", "dave"), ("model.approve", "alice"), ("model.approve", "bob"),
                       ("model.transition", "bob")]


def test_a_rejection_blocks_the_transition_until_a_new_request(workspace, monkeypatch):
    write_policy(workspace, APPROVALS)
    api.register_model(workspace, "churn", estimator())
    api.promote(workspace, "churn@1", "candidate")
    _as(monkeypatch, "dave")
    _decide(workspace, "churn@1", "request")
    for who in ("alice", "bob"):
        _as(monkeypatch, who)
        _decide(workspace, "churn@1", "approve")
    _as(monkeypatch, "carol")
    with pytest.raises(ConfigError, match="a rejection needs a --reason"):
        _decide(workspace, "churn@1", "reject")
    _decide(workspace, "churn@1", "reject", reason="fails the fairness review")
    with pytest.raises(PolicyError, match="was rejected by carol: fails the fairness review; make a new request"):
        api.promote(workspace, "churn@1", "production")
    _as(monkeypatch, "dave")
    _decide(workspace, "churn@1", "request", reason="fixed")  # earlier approvals do not carry over
    with pytest.raises(PolicyError, match="has 0"):
        api.promote(workspace, "churn@1", "production")


def test_the_requester_may_not_approve_their_own_request(workspace, monkeypatch):
    write_policy(workspace, APPROVALS)
    api.register_model(workspace, "churn", estimator())
    api.promote(workspace, "churn@1", "candidate")
    _as(monkeypatch, "alice")
    _decide(workspace, "churn@1", "request")
    with pytest.raises(PolicyError, match="refused by registry.self_approval .*'alice' made the request"):
        _decide(workspace, "churn@1", "approve")


def test_an_approval_needs_an_open_request(workspace):
    api.register_model(workspace, "churn", estimator())
    api.promote(workspace, "churn@1", "candidate")
    mv = state.resolve_ref(workspace.store, "churn@1")
    with pytest.raises(PolicyError, match="no open request to move mv-churn-1 to production; run `tether models "
                                          "request churn@1 --to production` first"):
        state.decide(workspace.store, mv, "production", "approve", actor="bob")
    assert state.load(workspace.store, "churn").approvals == []


def test_a_request_for_a_transition_that_is_not_allowed_is_refused(workspace):
    api.register_model(workspace, "churn", estimator())
    with pytest.raises(PolicyError, match="experimental -> production is not allowed"):
        state.decide(workspace.store, state.resolve_ref(workspace.store, "churn@1"), "production", "request")


# --- aliases -----------------------------------------------------------------------------------


def test_aliases_point_at_one_version_and_move_only_when_asked(workspace):
    for c in (1.0, 2.0):
        api.register_model(workspace, "churn", estimator(c))
    api.set_alias(workspace, "churn@1", "champion")
    with pytest.raises(PolicyError, match="alias 'champion' of model 'churn' is held by mv-churn-1; pass --move"):
        api.set_alias(workspace, "churn@2", "champion")
    assert state.aliases(workspace.store, "churn") == {"champion": "mv-churn-1"}
    moved = api.set_alias(workspace, "churn@2", "champion", move=True, reason="v2 wins the A/B test")
    assert moved.previous_id == "mv-churn-1"
    assert workspace.resolve("churn@champion", kind="model_version").id == "mv-churn-2"
    count = len(audit.entries(workspace.store))
    same = api.set_alias(workspace, "churn@2", "champion")  # already there: nothing new
    assert same.id == moved.id and len(audit.entries(workspace.store)) == count
    state.remove_alias(workspace.store, "churn", "champion")
    assert state.aliases(workspace.store, "churn") == {}
    with pytest.raises(NotFoundError, match="no alias 'champion'"):
        state.remove_alias(workspace.store, "churn", "champion")


@pytest.mark.parametrize(("alias", "message"), [
    ("production", "'production' is a status, not an alias name"),
    ("registered", "is a status"),
    ("3", "reads as a version number"),
    ("v3", "reads as a version number"),
    ("../x", "may hold only letters"),
    ("", "non-empty"),
])
def test_invalid_alias_names_are_refused(workspace, alias, message):
    api.register_model(workspace, "churn", estimator())
    with pytest.raises(ConfigError, match=message):
        api.set_alias(workspace, "churn@1", alias)
    assert state.load(workspace.store, "churn").aliases == []


# --- references --------------------------------------------------------------------------------


def test_every_reference_form_names_the_right_version(workspace):
    for c in (1.0, 2.0, 3.0):
        api.register_model(workspace, "churn", estimator(c))
    api.promote(workspace, "churn@1", "candidate")
    api.promote(workspace, "churn@1", "production")
    api.promote(workspace, "churn@2", "candidate")
    api.promote(workspace, "churn@2", "production")
    api.set_alias(workspace, "churn@1", "champion")
    resolve = workspace.resolve
    assert resolve("mv-churn-3", kind="model_version").version == 3
    assert resolve("churn", kind="model_version").version == 3
    assert resolve("churn@2", kind="model_version").version == 2
    assert resolve("churn@v2", kind="model_version").version == 2
    assert resolve("churn@champion", kind="model_version").version == 1
    assert resolve("churn@production", kind="model_version").version == 2  # the newest in production
    assert resolve("churn@experimental", kind="model_version").version == 3
    assert resolve("churn@champion").version == 1  # any kind: NAME@... is a model version


@pytest.mark.parametrize(("ref", "message"), [
    ("chrun@champion", "no model 'chrun'; did you mean 'churn'\\? \\(models: churn\\)"),
    ("chrun", "no model 'chrun'; did you mean 'churn'"),
    ("churn@champio", "model 'churn' has no alias 'champio'; did you mean 'champion'"),
    ("churn@9", "model 'churn' has no version 9 \\(versions: 1\\)"),
    ("churn@deprecated", "no version of model 'churn' is deprecated now"),
])
def test_an_unknown_reference_is_a_one_line_error_with_a_suggestion(workspace, ref, message):
    api.register_model(workspace, "churn", estimator())
    api.set_alias(workspace, "churn@1", "champion")
    with pytest.raises(NotFoundError, match=message) as caught:
        workspace.resolve(ref, kind="model_version")
    assert "\n" not in str(caught.value)


# --- history -----------------------------------------------------------------------------------


def test_history_says_what_was_in_production_on_a_given_day(workspace, monkeypatch):
    clock = fixed_clock(monkeypatch, "2026-03-01T09:00")
    api.register_model(workspace, "churn", estimator(1.0))
    api.promote(workspace, "churn@1", "candidate")
    clock.set("2026-03-02T10:00")
    api.promote(workspace, "churn@1", "production")
    api.set_alias(workspace, "churn@1", "champion")
    api.register_model(workspace, "churn", estimator(2.0))
    clock.set("2026-03-03T12:00")
    api.promote(workspace, "churn@2", "candidate")
    clock.set("2026-03-04T08:00")
    api.promote(workspace, "churn@2", "production")
    api.set_alias(workspace, "churn@2", "champion", move=True)
    clock.set("2026-03-04T09:00")
    api.promote(workspace, "churn@1", "deprecated")

    rows = history(workspace.store, "churn")

    def held(when: str, what: str, value: str) -> list[int]:
        return sorted(r["version"] for r in at(rows, *parse_when(when)) if r["what"] == what and r["value"] == value)

    assert held("2026-03-03", "status", "production") == [1]
    assert held("2026-03-03", "alias", "champion") == [1]
    assert held("2026-03-04", "status", "production") == [1, 2]  # both, at different times that day
    assert held("2026-03-04T10:00", "status", "production") == [2]
    assert held("2026-03-04T10:00", "status", "deprecated") == [1]
    assert held("2026-03-01", "status", "production") == []
    assert held("2026-03-05", "alias", "champion") == [2]
    v1 = [r for r in rows if r["version"] == 1 and r["what"] == "status"]
    assert [(r["value"], r["from"].day, r["to"].day if r["to"] else None) for r in v1] == [
        ("experimental", 1, 1), ("candidate", 1, 2), ("production", 2, 4), ("deprecated", 4, None)]


def test_a_bad_history_date_is_a_config_error():
    with pytest.raises(ConfigError, match="--at: expected a date"):
        parse_when("3 March")


def test_history_shows_which_version_ran_in_which_environment(workspace, monkeypatch):
    from tether.records import Deployment

    clock = fixed_clock(monkeypatch, "2026-03-01T09:00")
    for c in (1.0, 2.0):
        api.register_model(workspace, "churn", estimator(c))
    for day, version, env in ((2, 1, "production"), (3, 1, "staging"), (5, 2, "production")):
        clock.set(f"2026-03-0{day}T12:00")
        workspace.store.put(Deployment(id=f"deploy-{day}", model_version_id=f"mv-churn-{version}", target="batch",
                                       status="completed", environment=env, created_at=clock()))
    rows = [r for r in history(workspace.store, "churn") if r["what"] == "environment"]
    assert [(r["version"], r["value"], r["from"].day, r["to"].day if r["to"] else None) for r in rows] == [
        (1, "production", 2, 5), (1, "staging", 3, None), (2, "production", 5, None)]
    on_the_4th = [(r["version"], r["value"]) for r in at(rows, *parse_when("2026-03-04"))]
    assert on_the_4th == [(1, "production"), (1, "staging")]
    assert state.deployed_at(workspace.store, workspace.store.get("mv-churn-1")).day == 2


def test_a_registration_from_a_run_records_its_code_version(workspace):
    from tether.records import Run

    workspace.store.put(Run(id="run-1", chain="train", chain_digest="d", status="succeeded",
                            code={"git_commit": "0123abc"}))
    mv = api.register_model(workspace, "churn", estimator(), run_id="run-1")
    assert (mv.run_id, mv.code_version) == ("run-1", "0123abc")
    with pytest.raises(NotFoundError, match="no run 'run-2'"):
        api.register_model(workspace, "churn", estimator(2.0), run_id="run-2")
