"""The transition policy: which status changes are allowed and what each needs.

The policy lives in the workspace, in ``<workspace>/policy.yaml`` under ``registry:``
(every command and the Python API read it from there; a missing file means the
defaults). Every key is optional::

    registry:
      transitions:                 # from -> the statuses it may move to
        experimental: [candidate, archived]
        candidate: [production, experimental, archived]
        production: [deprecated]
        deprecated: [production, archived]
        archived: []
      gates: [candidate, production]   # targets that need a passed evaluation
      require_evaluation: false        # true: a version without evaluation fails the gate too
      approvals:                       # targets that need approvals
        production: {approvers: [alice, bob], count: 1}
      self_approval: false             # may the requester approve their own request?

A refused transition raises :class:`PolicyError` naming the rule, e.g.
``refused by registry.transitions: experimental -> production is not allowed ...``.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
from tether.errors import ConfigError, TetherError, did_you_mean, reject_unknown_keys
from tether.names import check_name

from .records import STATUSES

POLICY_FILE = "policy.yaml"

DEFAULT_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "experimental": ("candidate", "archived"),
    "candidate": ("production", "experimental", "archived"),
    "production": ("deprecated",),
    "deprecated": ("production", "archived"),
    "archived": (),
}


class PolicyError(TetherError):
    """A registry action breaks the transition policy; the message names the rule."""

    exit_code = 2


@attrs.frozen(kw_only=True)
class ApprovalRule:
    """``count`` approvals needed, from ``approvers`` (empty: from anyone)."""

    approvers: tuple[str, ...] = ()
    count: int = 1


@attrs.frozen(kw_only=True)
class RegistryPolicy:
    """The parsed ``registry`` policy (see the module docstring)."""

    transitions: MappingProxyType = attrs.field(factory=lambda: MappingProxyType(dict(DEFAULT_TRANSITIONS)))
    gates: tuple[str, ...] = ("candidate", "production")
    require_evaluation: bool = False
    approvals: MappingProxyType = attrs.field(factory=lambda: MappingProxyType({}))
    self_approval: bool = False
    source: str = "the default policy"

    def allowed(self, from_status: str) -> tuple[str, ...]:
        return tuple(self.transitions.get(from_status, ()))


def suggest(word: str, choices) -> str:
    """``"; did you mean 'x'?"``: the one choice ``word`` abbreviates, else the closest."""
    starting = [c for c in choices if word and c.startswith(word)]
    return f"; did you mean '{starting[0]}'?" if len(starting) == 1 else did_you_mean(word, choices)


def check_status(value: Any, where: str) -> str:
    """``value`` if it is a status, else a ConfigError with a did-you-mean."""
    if value not in STATUSES:
        raise ConfigError(f"{where}: unknown status {value!r}{suggest(str(value), STATUSES)} "
                          f"(statuses: {', '.join(STATUSES)})")
    return value


def _status_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of statuses, got {type(value).__name__}")
    return tuple(check_status(item, f"{where}[{i}]") for i, item in enumerate(value))


def _approval_rule(value: Any, where: str) -> ApprovalRule:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping with 'approvers' and 'count'")
    reject_unknown_keys(value, ("approvers", "count"), where)
    approvers = value.get("approvers", [])
    if not isinstance(approvers, list):
        raise ConfigError(f"{where}.approvers: expected a list of names")
    names = tuple(_identity(a, f"{where}.approvers[{i}]") for i, a in enumerate(approvers))
    count = value.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"{where}.count: expected a whole number of at least 1, got {count!r}")
    if names and count > len(set(names)):
        raise ConfigError(f"{where}.count: {count} approvals can never come from {len(set(names))} approvers")
    return ApprovalRule(approvers=names, count=count)


def _identity(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty name, got {value!r}")
    return value.strip()


def _flag(raw: dict, key: str, where: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def parse_policy(raw: Any, where: str = "registry", source: str = "") -> RegistryPolicy:
    """A :class:`RegistryPolicy` from the mapping under ``registry:``; errors name the key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    reject_unknown_keys(raw, ("transitions", "gates", "require_evaluation", "approvals", "self_approval"), where)
    transitions = dict(DEFAULT_TRANSITIONS)
    if "transitions" in raw:
        given = raw["transitions"]
        if not isinstance(given, dict):
            raise ConfigError(f"{where}.transitions: expected a mapping of status -> [statuses]")
        transitions = {s: () for s in STATUSES}
        for status, targets in given.items():
            check_status(status, f"{where}.transitions")
            transitions[status] = _status_list(targets, f"{where}.transitions.{status}")
    gates = _status_list(raw["gates"], f"{where}.gates") if "gates" in raw else ("candidate", "production")
    approvals_raw = raw.get("approvals", {})
    if not isinstance(approvals_raw, dict):
        raise ConfigError(f"{where}.approvals: expected a mapping of status -> {{approvers, count}}")
    approvals = {check_status(s, f"{where}.approvals"): _approval_rule(rule, f"{where}.approvals.{s}")
                 for s, rule in approvals_raw.items()}
    return RegistryPolicy(transitions=MappingProxyType(transitions), gates=gates,
                          require_evaluation=_flag(raw, "require_evaluation", where, False),
                          approvals=MappingProxyType(approvals),
                          self_approval=_flag(raw, "self_approval", where, False),
                          source=source or where)


def load_policy(root: str | Path) -> RegistryPolicy:
    """The policy in ``<root>/policy.yaml`` (the workspace folder), or the defaults."""
    from tether.documents import read_yaml_file

    path = Path(root) / POLICY_FILE
    if not path.exists():
        return RegistryPolicy()
    raw = read_yaml_file(path, "policy file")
    if raw is None:
        return RegistryPolicy(source=str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"policy file '{path}': expected a mapping with a 'registry' section")
    reject_unknown_keys(raw, ("registry",), f"policy file '{path}'", what="section")
    return parse_policy(raw.get("registry"), f"policy file '{path}': registry", source=str(path))


def check_alias_name(value: Any, where: str = "alias") -> str:
    """An alias is a name (``tether.names``) that is neither a status nor a number, so
    ``NAME@ALIAS`` can never be read as another reference form."""
    alias = check_name(value, where, what="alias")
    if alias in STATUSES or alias == "registered":
        raise ConfigError(f"{where}: '{alias}' is a status, not an alias name; "
                          f"use `tether models promote` to change a status")
    if alias.lstrip("v").isdigit():
        raise ConfigError(f"{where}: '{alias}' reads as a version number; choose a name such as 'champion'")
    return alias
