"""Alert rules: which signals raise alerts, with what severity and action.

A monitor turns its results into *signals* (flat name -> number, e.g. ``drift.share``,
``drift.column.price``, ``health.errors``, ``estimated.roc_auc``; see :mod:`.signals`),
and rules fire on them. A rule has a severity (``info``, ``warning``, ``critical``) and an
action (``investigate``, ``retrain``, ``roll_back``); an alert with the same rule and
subject that fired within the rule's cooldown is kept in the report but marked
``suppressed`` and not sent again.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import math
from pathlib import Path
from typing import Any

import attrs
from tether.errors import ConfigError

SEVERITIES = ("info", "warning", "critical")
ACTIONS = ("none", "investigate", "retrain", "roll_back")


@attrs.frozen(kw_only=True)
class AlertRule:
    """Fires when ``signal`` (a name, or a glob such as ``drift.column.*``) is ``>= above``
    or ``< below``."""

    name: str
    signal: str
    above: float | None = None
    below: float | None = None
    severity: str = "warning"
    action: str = "investigate"
    cooldown_minutes: float = 60.0
    message: str = ""

    @classmethod
    def from_config(cls, raw: Any, where: str) -> AlertRule:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping with name, signal, above/below, severity, action")
        known = {a.name for a in attrs.fields(cls)}
        extra = set(raw) - known
        if extra:
            raise ConfigError(f"{where}: unknown key '{min(extra)}' (allowed: {', '.join(sorted(known))})")
        for key in ("name", "signal"):
            if not isinstance(raw.get(key), str) or not raw.get(key):
                raise ConfigError(f"{where}.{key}: required, a string")
        if (raw.get("above") is None) == (raw.get("below") is None):
            raise ConfigError(f"{where}: give exactly one of 'above' or 'below'")
        if raw.get("severity", "warning") not in SEVERITIES:
            raise ConfigError(f"{where}.severity: {raw.get('severity')!r} is not one of {', '.join(SEVERITIES)}")
        if raw.get("action", "investigate") not in ACTIONS:
            raise ConfigError(f"{where}.action: {raw.get('action')!r} is not one of {', '.join(ACTIONS)}")
        try:
            return cls(**{k: (float(v) if k in ("above", "below", "cooldown_minutes") and v is not None else v)
                          for k, v in raw.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def evaluate(self, signals: dict[str, float]) -> list[dict[str, Any]]:
        fired = []
        names = [s for s in signals if fnmatch.fnmatchcase(s, self.signal)] if any(
            ch in self.signal for ch in "*?[") else ([self.signal] if self.signal in signals else [])
        for name in names:
            value = signals[name]
            if value is None or math.isnan(value):
                continue
            hit = value >= self.above if self.above is not None else value < self.below
            if hit:
                bound = f">= {self.above:g}" if self.above is not None else f"< {self.below:g}"
                fired.append({"rule": self.name, "signal": name, "value": float(value), "severity": self.severity,
                              "action": self.action, "message": self.message or f"{name} = {value:.4g} ({bound})",
                              "suppressed": False})
        return fired


def default_rules(warn_share: float, critical_share: float) -> list[AlertRule]:
    """Used when a monitor configures no rules."""
    return [
        AlertRule(name="drift-share", signal="drift.share", above=warn_share, severity="warning", action="investigate"),
        AlertRule(name="drift-share-critical", signal="drift.share", above=critical_share, severity="critical",
                  action="retrain"),
        AlertRule(name="health-errors", signal="health.errors", above=1, severity="critical", action="investigate"),
        AlertRule(name="health-warnings", signal="health.warnings", above=1, severity="warning", action="investigate"),
        AlertRule(name="class-rate-change", signal="class_rate.change", above=0.1, severity="warning",
                  action="investigate"),
        AlertRule(name="estimated-performance-drop", signal="performance_drop.*", above=0.05, severity="warning",
                  action="investigate"),
    ]


def verdict_of(alerts: list[dict[str, Any]]) -> str:
    severities = {a["severity"] for a in alerts}
    return "critical" if "critical" in severities else "warning" if "warning" in severities else "ok"


class AlertState:
    """Last firing time per (rule, subject), kept as JSON in the workspace, for cooldowns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            self.data = {}

    def apply(self, alerts: list[dict[str, Any]], rules: dict[str, AlertRule], now: dt.datetime) -> None:
        seen = set()
        for alert in alerts:
            key = f"{alert['rule']}|{alert['signal']}"
            if key in seen:
                alert["suppressed"] = True
                continue
            seen.add(key)
            last = self.data.get(key)
            cooldown = dt.timedelta(minutes=rules[alert["rule"]].cooldown_minutes)
            if last and now - dt.datetime.fromisoformat(last) < cooldown:
                alert["suppressed"] = True
            else:
                self.data[key] = now.isoformat()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)


def fire(rules: list[AlertRule], signals: dict[str, float], *, state_path: Path | None,
         now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Evaluate every rule; de-duplicate and apply cooldowns (persisted at ``state_path``)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    alerts = [alert for rule in rules for alert in rule.evaluate(signals)]
    for alert in alerts:
        alert["at"] = now.isoformat()
    if state_path is not None:
        state = AlertState(state_path)
        state.apply(alerts, {r.name: r for r in rules}, now)
        state.save()
    return alerts

