"""What the registry knows about a model, replayed from its append-only records.

A ``ModelVersion`` is written once; its status, aliases and approvals are the records of
:mod:`.records`, each numbered per model name in one store transaction
(``put_versioned``). Every change re-reads the model's log inside that transaction and
checks the policy there, so two concurrent changes cannot both pass a check that only
one of them may. Each change's audit entry (:mod:`tether.audit`) is written in that same
transaction, so a change is never committed without its entry.

Reference forms (:func:`resolve_ref`): ``mv-churn-3`` (id), ``churn`` (latest version),
``churn@3`` / ``churn@v3``, ``churn@champion`` (alias), ``churn@production`` (the newest
version currently in that status).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from tether import audit
from tether.errors import ConfigError, NotFoundError, did_you_mean
from tether.records import ModelVersion, utcnow

from .policy import PolicyError, RegistryPolicy, check_alias_name, check_status
from .records import LEGACY_STATUSES, STATUSES, ModelAlias, ModelApproval, ModelTransition

KIND = "model_version"


def current_status(stored: str) -> str:
    """A stored status as read today (``registered`` from earlier releases -> ``experimental``)."""
    return LEGACY_STATUSES.get(stored, stored)


@attrs.define
class ModelLog:
    """Everything recorded about one model name, oldest first in each list."""

    name: str
    versions: list[ModelVersion]
    transitions: list[ModelTransition]
    aliases: list[ModelAlias]
    approvals: list[ModelApproval]

    def version(self, mv_id: str) -> ModelVersion | None:
        return next((v for v in self.versions if v.id == mv_id), None)

    def status(self, mv: ModelVersion) -> str:
        moves = [t for t in self.transitions if t.model_version_id == mv.id]
        return moves[-1].to_status if moves else current_status(mv.status)

    def current_aliases(self) -> dict[str, str]:
        held: dict[str, str] = {}
        for change in self.aliases:
            if change.model_version_id is None:
                held.pop(change.alias, None)
            else:
                held[change.alias] = change.model_version_id
        return dict(sorted(held.items()))

    def open_request(self, mv: ModelVersion, to: str) -> tuple[ModelApproval | None, list[ModelApproval]]:
        """The latest request to move ``mv`` to ``to`` made since its last transition, and
        the decisions on it since."""
        moved = [t.created_at for t in self.transitions if t.model_version_id == mv.id]
        since = moved[-1] if moved else None
        mine = [a for a in self.approvals if a.model_version_id == mv.id and a.to_status == to
                and (since is None or a.created_at > since)]
        requests = [i for i, a in enumerate(mine) if a.action == "request"]
        if not requests:
            return None, []
        return mine[requests[-1]], mine[requests[-1] + 1:]


def _ascending(records: list[Any]) -> list[Any]:
    return sorted(records, key=lambda r: r.version)


def load(store: Any, name: str, *, with_versions: bool = True) -> ModelLog:
    """The model's whole log (versions, transitions, aliases, approvals); without the
    versions themselves if not ``with_versions`` (changes need only the one they touch)."""
    return ModelLog(name=name, versions=_ascending(store.find(KIND, name=name)) if with_versions else [],
                    transitions=_ascending(store.find("model_transition", name=name)),
                    aliases=_ascending(store.find("model_alias", name=name)),
                    approvals=_ascending(store.find("model_approval", name=name)))


# --- reading --------------------------------------------------------------------------------


def model_names(store: Any) -> list[str]:
    """Every registered model name, sorted."""
    return sorted({mv.name for mv in store.find(KIND)})


def versions(store: Any, name: str) -> list[ModelVersion]:
    """The versions of ``name``, oldest first."""
    return _ascending(store.find(KIND, name=name))


def status_of(store: Any, mv: ModelVersion) -> str:
    """The current status of ``mv``: its latest transition's target, else the status it was
    registered with (``registered`` read as ``experimental``)."""
    moves = [t for t in store.find("model_transition", name=mv.name) if t.model_version_id == mv.id]
    return max(moves, key=lambda t: t.version).to_status if moves else current_status(mv.status)


def aliases(store: Any, name: str) -> dict[str, str]:
    """``{alias: model version id}`` of ``name`` now."""
    return load(store, name).current_aliases()


def deployed_at(store: Any, mv: ModelVersion) -> dt.datetime | None:
    """When ``mv`` was first deployed (from the deployment records), or ``None``."""
    times = [d.created_at for d in store.find("deployment") if d.model_version_id == mv.id]
    return min(times) if times else None


def approval_state(log: ModelLog, mv: ModelVersion) -> dict[str, dict[str, Any]]:
    """Per target status with an open request: who asked, who approved, who rejected."""
    out: dict[str, dict[str, Any]] = {}
    for to in STATUSES:
        request, decisions = log.open_request(mv, to)
        if request is not None:
            out[to] = {"requested_by": request.actor, "reason": request.reason,
                       "approved_by": sorted({a.actor for a in decisions if a.action == "approve"}),
                       "rejected_by": sorted({a.actor for a in decisions if a.action == "reject"})}
    return out


def resolve_reference(store: Any, ref: str, *, required: bool) -> ModelVersion | None:
    """The resolver ``Workspace.resolve`` calls for model versions (``Backends.add_reference``):
    ``mv-churn-3``, ``churn@3``, ``churn@champion``, ``churn@production``, or an id prefix of
    8 characters or more; ``None`` when ``ref`` names no model and is not ``required``."""
    if store.find(KIND, name=ref.partition("@")[0], limit=1):
        return resolve_ref(store, ref)
    if not required:
        return None
    if len(ref) >= 8 and "@" not in ref:
        found = store.find(KIND, prefix=ref, limit=2)
        if len(found) > 1:
            raise NotFoundError(f"model_version id prefix '{ref}' is ambiguous; give more characters")
        if found:
            return found[0]
    return resolve_ref(store, ref)  # raises, naming the closest model


def resolve_ref(store: Any, ref: str) -> ModelVersion:
    """The model version ``ref`` names (see the module docstring); NotFoundError, with a
    did-you-mean, for an unknown model, version, alias or an empty status."""
    if not isinstance(ref, str) or not ref.strip():
        raise NotFoundError(f"give a model version (mv-NAME-N, NAME@N, NAME@ALIAS or NAME@STATUS), got {ref!r}")
    found = store.get(ref, kind=KIND)
    if found is not None:
        return found
    name, _, selector = ref.partition("@")
    if selector.lstrip("v").isdigit():  # the common case, without reading the whole log
        found = store.get(f"mv-{name}-{int(selector.lstrip('v'))}", kind=KIND)
        if found is not None and found.name == name:
            return found
    log = load(store, name)
    if not log.versions:
        known = model_names(store)
        raise NotFoundError(f"no model '{name}'{did_you_mean(name, known)} "
                            f"(models: {', '.join(known) or 'none registered'})")
    if not selector:
        return log.versions[-1]
    if selector.lstrip("v").isdigit():
        wanted = int(selector.lstrip("v"))
        match = [v for v in log.versions if v.version == wanted]
        if not match:
            raise NotFoundError(f"model '{name}' has no version {wanted} "
                                f"(versions: {', '.join(str(v.version) for v in log.versions)})")
        return match[0]
    if selector in STATUSES or selector in LEGACY_STATUSES:
        status = current_status(selector)
        held = [v for v in log.versions if log.status(v) == status]
        if not held:
            raise NotFoundError(f"no version of model '{name}' is {status} now")
        return held[-1]
    held_aliases = log.current_aliases()
    if selector in held_aliases:
        return log.version(held_aliases[selector])
    choices = list(held_aliases) + list(STATUSES)
    raise NotFoundError(f"model '{name}' has no alias '{selector}'{did_you_mean(selector, choices)} "
                        f"(aliases: {', '.join(held_aliases) or 'none'}; or a status: {', '.join(STATUSES)})")


# --- changing ---------------------------------------------------------------------------------


def _record(store: Any, kind: str, name: str, make, change):
    """Write ``make(log, n)`` as record ``n`` of ``kind`` for ``name``, ``log`` being the
    model's log read inside the numbering transaction (so checks see every earlier change),
    with the audit entry ``change(record)`` in that transaction."""
    def build(n: int):
        return make(load(store, name, with_versions=False), n)

    return audit.put_versioned(store, build, change, kind=kind, name=name)


def _version_in(store: Any, mv: ModelVersion) -> ModelVersion:
    found = store.get(mv.id, kind=KIND)
    if found is None:
        raise NotFoundError(f"model version '{mv.id}' is not registered")
    return found


def _check_gate(store: Any, mv: ModelVersion, to: str, policy: RegistryPolicy, override: bool,
                reason: str) -> bool:
    """Whether the evaluation gate for ``to`` was overridden; PolicyError if it fails."""
    if to not in policy.gates:
        return False
    evaluation = store.get(mv.evaluation_id, kind="evaluation") if mv.evaluation_id else None
    if evaluation is not None and evaluation.passed:
        return False
    if evaluation is None and not policy.require_evaluation:
        return False
    problem = (f"its evaluation {evaluation.id} failed" if evaluation is not None
               else "it has no evaluation (require_evaluation is set)")
    if not override:
        raise PolicyError(f"refused by registry.gates ({policy.source}): {mv.id} cannot become {to}: {problem}; "
                          "pass --override with a --reason justifying it to record an override")
    if not reason.strip():
        raise PolicyError(f"refused by registry.gates: overriding the evaluation gate of {mv.id} needs a --reason")
    return True


def _check_approvals(log: ModelLog, mv: ModelVersion, to: str, policy: RegistryPolicy) -> tuple[str, ...]:
    """The approvals a transition to ``to`` relies on; PolicyError if they fall short."""
    rule = policy.approvals.get(to)
    if rule is None:
        return ()
    where = f"registry.approvals.{to} ({policy.source})"
    request, decisions = log.open_request(mv, to)
    if request is None:
        raise PolicyError(f"refused by {where}: {mv.id} needs {rule.count} approval(s) to become {to} and has no "
                          f"open request; run `tether models request {mv.name}@{mv.version} --to {to}`")
    rejected = [d for d in decisions if d.action == "reject"]
    if rejected:
        raise PolicyError(f"refused by {where}: the request for {mv.id} was rejected by {rejected[-1].actor}: "
                          f"{rejected[-1].reason}; make a new request")
    counted = {d.actor: d.id for d in decisions if d.action == "approve"  # as the policy stands now:
               and (not rule.approvers or d.actor in rule.approvers)
               and (policy.self_approval or d.actor != request.actor)}
    if len(counted) < rule.count:
        need = f" from {', '.join(rule.approvers)}" if rule.approvers else ""
        have = f" ({', '.join(sorted(counted))})" if counted else ""
        raise PolicyError(f"refused by {where}: {mv.id} needs {rule.count} approval(s){need} to become {to}; "
                          f"has {len(counted)}{have}")
    return tuple(sorted(counted.values()))


def transition(store: Any, mv: ModelVersion, to: str, *, actor: str | None = None, reason: str = "",
               policy: RegistryPolicy | None = None, override: bool = False) -> ModelTransition:
    """Move ``mv`` to status ``to`` under ``policy`` (the defaults if ``None``); returns the
    transition record. PolicyError names the rule a refused transition breaks."""
    check_status(to, "status")
    policy = policy or RegistryPolicy()
    who = actor or audit.actor()

    def make(log: ModelLog, n: int) -> ModelTransition:
        current = _version_in(store, mv)
        now = log.status(current)
        if now == to:
            raise PolicyError(f"{mv.id} is already {to}")
        allowed = policy.allowed(now)
        if to not in allowed:
            raise PolicyError(f"refused by registry.transitions ({policy.source}): {now} -> {to} is not allowed "
                              f"(from {now}: {', '.join(allowed) or 'nothing; it is final'})")
        overridden = _check_gate(store, current, to, policy, override, reason)
        approvals = _check_approvals(log, current, to, policy)
        return ModelTransition(id=f"mt-{mv.name}-{n}", name=mv.name, version=n, model_version_id=mv.id,
                               from_status=now, to_status=to, actor=who, reason=reason, override=overridden,
                               approvals=approvals, created_at=utcnow())

    def change(record: ModelTransition) -> audit.Change:
        return audit.Change(action="model.transition", subject=mv.id, actor=who,
                            details={"from": record.from_status, "to": to, "reason": reason,
                                     "override": record.override, "approvals": list(record.approvals),
                                     "record": record.id})

    return _record(store, "model_transition", mv.name, make, change)


def set_alias(store: Any, mv: ModelVersion, alias: str, *, actor: str | None = None, reason: str = "",
              move: bool = False) -> ModelAlias:
    """Point ``alias`` at ``mv``. An alias held by another version moves only with ``move``;
    pointing it where it already points changes nothing (that record is returned)."""
    alias = check_alias_name(alias)
    who = actor or audit.actor()
    unchanged: list[ModelAlias] = []

    def make(log: ModelLog, n: int) -> ModelAlias:
        _version_in(store, mv)
        holder = log.current_aliases().get(alias)
        if holder == mv.id:
            unchanged.append(next(a for a in reversed(log.aliases) if a.alias == alias))
            raise _Unchanged
        if holder is not None and not move:
            raise PolicyError(f"alias '{alias}' of model '{mv.name}' is held by {holder}; pass --move to point it "
                              f"at {mv.id}")
        return ModelAlias(id=f"ma-{mv.name}-{n}", name=mv.name, version=n, alias=alias, model_version_id=mv.id,
                          previous_id=holder, actor=who, reason=reason, created_at=utcnow())

    def change(record: ModelAlias) -> audit.Change:
        return audit.Change(action="model.alias", subject=mv.id, actor=who,
                            details={"alias": alias, "previous": record.previous_id, "reason": reason,
                                     "record": record.id})

    try:
        return _record(store, "model_alias", mv.name, make, change)
    except _Unchanged:
        return unchanged[0]


def remove_alias(store: Any, name: str, alias: str, *, actor: str | None = None, reason: str = "") -> ModelAlias:
    """Remove ``alias`` from model ``name``; NotFoundError if it is not set."""
    who = actor or audit.actor()

    def make(log: ModelLog, n: int) -> ModelAlias:
        holder = log.current_aliases().get(alias)
        if holder is None:
            raise NotFoundError(f"model '{name}' has no alias '{alias}'"
                                f"{did_you_mean(alias, log.current_aliases())}")
        return ModelAlias(id=f"ma-{name}-{n}", name=name, version=n, alias=alias, model_version_id=None,
                          previous_id=holder, actor=who, reason=reason, created_at=utcnow())

    def change(record: ModelAlias) -> audit.Change:
        return audit.Change(action="model.alias", subject=record.previous_id, actor=who,
                            details={"alias": alias, "removed": True, "reason": reason, "record": record.id})

    return _record(store, "model_alias", name, make, change)


class _Unchanged(Exception):
    """Raised inside a numbering transaction to write nothing (rolled back)."""


def decide(store: Any, mv: ModelVersion, to: str, action: str, *, actor: str | None = None, reason: str = "",
           policy: RegistryPolicy | None = None) -> ModelApproval:
    """Record a ``request`` to move ``mv`` to ``to``, or an approver's ``approve``/``reject``
    of the open request. PolicyError when the policy forbids it (not an approver, approving
    one's own request, no open request, a transition that is not allowed)."""
    if action not in ("request", "approve", "reject"):
        raise ConfigError(f"action must be request, approve or reject, got {action!r}")
    check_status(to, "status")
    policy = policy or RegistryPolicy()
    who = actor or audit.actor()
    if action == "reject" and not reason.strip():
        raise ConfigError("a rejection needs a --reason")

    def make(log: ModelLog, n: int) -> ModelApproval:
        current = _version_in(store, mv)
        _check_decision(log, current, to, action, who, policy)
        return ModelApproval(id=f"mp-{mv.name}-{n}", name=mv.name, version=n, model_version_id=mv.id,
                             action=action, to_status=to, actor=who, reason=reason, created_at=utcnow())

    def change(record: ModelApproval) -> audit.Change:
        return audit.Change(action=f"model.{action}", subject=mv.id, actor=who,
                            details={"to": to, "reason": reason, "record": record.id})

    return _record(store, "model_approval", mv.name, make, change)


def _check_decision(log: ModelLog, mv: ModelVersion, to: str, action: str, who: str,
                    policy: RegistryPolicy) -> None:
    now = log.status(mv)
    if action == "request":
        allowed = policy.allowed(now)
        if to not in allowed:
            raise PolicyError(f"refused by registry.transitions ({policy.source}): {now} -> {to} is not allowed "
                              f"(from {now}: {', '.join(allowed) or 'nothing; it is final'})")
        return
    request, decisions = log.open_request(mv, to)
    where = f"registry.approvals.{to} ({policy.source})"
    if request is None:
        raise PolicyError(f"no open request to move {mv.id} to {to}; "
                          f"run `tether models request {mv.name}@{mv.version} --to {to}` first")
    rule = policy.approvals.get(to)
    if rule is not None and rule.approvers and who not in rule.approvers:
        raise PolicyError(f"refused by {where}: '{who}' is not an approver (approvers: {', '.join(rule.approvers)})")
    if who == request.actor and not policy.self_approval:
        raise PolicyError(f"refused by registry.self_approval ({policy.source}): '{who}' made the request for "
                          f"{mv.id} and cannot {action} it")
    if any(d.actor == who for d in decisions):
        raise PolicyError(f"'{who}' already decided on the request to move {mv.id} to {to}")
