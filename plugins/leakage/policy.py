"""Running the checks a policy enables: actions, options, severities, and ``LeakageFailed``.

A chain's ``policy.leakage`` maps a check name to ``fail``, ``warn`` or ``off``, or to a
mapping with ``action`` plus the check's options (see docs/leakage.md).
"""

from __future__ import annotations

from typing import Any

import attrs
from tether.errors import ConfigError, StageError, reject_unknown_keys
from tether.records import Finding

from .duplicates import ExactDuplicates
from .entities import EntityOverlap
from .input import LeakageInput
from .label_shift import LabelShift
from .near_duplicates import NearDuplicates
from .target import MissingnessLeakage, TargetLeakage
from .temporal import FeatureAvailability, TemporalOrder

ACTIONS = ("fail", "warn", "off")
SEVERITY = {"fail": "error", "warn": "warning"}

#: The built-in checks; a policy knows these even without a plugin host.
BUILTIN_CHECKS = (ExactDuplicates, NearDuplicates, EntityOverlap, TemporalOrder, FeatureAvailability,
                  TargetLeakage, MissingnessLeakage, LabelShift)


class LeakageFailed(StageError):
    """A split has findings its policy marks ``fail``; the manifest is stored regardless."""

    def __init__(self, message: str, *, manifest_id: str | None = None, findings=()) -> None:
        super().__init__(message)
        self.manifest_id = manifest_id
        self.findings = tuple(findings)

    @classmethod
    def from_findings(cls, manifest_id: str, findings) -> LeakageFailed:
        names = ", ".join(f"{f.check} ({f.message})" for f in findings)
        return cls(f"leakage checks failed: {names}; see `tether splits show {manifest_id}`",
                   manifest_id=manifest_id, findings=findings)


def _policy_entry(entry: Any, name: str, where: str) -> tuple[str | None, dict[str, Any]]:
    """``(action or None, options)`` of one check's policy entry."""
    if entry is None:
        return None, {}
    if entry is False:  # YAML reads a bare `off` as false
        return "off", {}
    if isinstance(entry, str):
        action, options = entry, {}
    elif isinstance(entry, dict):
        options = dict(entry)
        action = options.pop("action", None)
    else:
        raise ConfigError(f"{where}.{name}: expected fail, warn, off or a mapping with 'action', got {entry!r}")
    if action is not None and action not in ACTIONS:
        raise ConfigError(f"{where}.{name}: action {action!r} is not one of {', '.join(ACTIONS)}")
    return action, options


def _make_check(cls, options: dict[str, Any], *, host, where: str):
    """The check with the policy's options: through the host's registry (which validates
    types), or directly for a built-in check when there is no host."""
    if host is not None:
        return host.backends.create("leakage", cls.name, options, where=where)
    reject_unknown_keys(options, [f.name for f in attrs.fields(cls) if f.init], where, what="option")
    try:
        return cls(**options)
    except ConfigError as exc:  # a validator's error names its option
        raise ConfigError(f"{where}.params.{exc.key}: {exc}" if exc.key else f"{where}.params: {exc}") from None


def check_policy(value: Any, *, where: str, host) -> None:
    """Validate a chain's ``policy.leakage`` before the run (checks, actions, options)."""
    configured_checks(value, host=host, where=where)


def configured_checks(policy: dict[str, Any] | None, *, host=None, where: str = "policy.leakage"):
    """``[(action, check instance)]`` for every check the policy does not turn ``off``.

    Unknown check names, actions and options are :class:`ConfigError` naming the key.
    """
    if policy is not None and not isinstance(policy, dict):
        raise ConfigError(f"{where}: expected a mapping of check name -> fail|warn|off, got {policy!r}")
    policy = dict(policy or {})
    if host is not None:
        classes = {name: host.backends.get("leakage", name) for name in host.backends.names("leakage")}
    else:
        classes = {cls.name: cls for cls in sorted(BUILTIN_CHECKS, key=lambda cls: cls.name)}
    reject_unknown_keys(policy, classes, where, what="leakage check")
    out = []
    for name, cls in classes.items():
        action, options = _policy_entry(policy.get(name), name, where)
        action = action or cls.default_action
        if action != "off":
            out.append((action, _make_check(cls, options, host=host, where=f"{where}.{name}")))
    return out


def run_checks(data: LeakageInput, policy: dict[str, Any] | None, *, host=None,
               where: str = "policy.leakage") -> list[Finding]:
    """Run every leakage check the policy does not turn ``off``; severities follow the policy."""
    findings: list[Finding] = []
    for action, check in configured_checks(policy, host=host, where=where):
        for finding in check.check(data):
            findings.append(attrs.evolve(finding, severity=SEVERITY[action]))
    return findings


def read_policy_file(path: str) -> dict[str, Any]:
    """The leakage policy in a YAML file: a chain (its ``policy.leakage``), a ``policy``
    mapping, or a mapping of check names to actions."""
    from tether.documents import read_yaml_file

    raw = read_yaml_file(path, "--policy: file") or {}
    if isinstance(raw, dict) and "policy" in raw:
        raw = raw["policy"] or {}
    if isinstance(raw, dict) and "leakage" in raw:
        raw = raw["leakage"] or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"--policy: '{path}' must map check names to fail, warn or off")
    return raw
