"""Alerts, their sinks, retraining triggers and the rollback interface.

A monitor turns its results into *signals* (flat name -> number, e.g. ``drift.share``,
``drift.column.price``, ``health.errors``, ``estimated.roc_auc``), and alert *rules* fire on
them. A rule has a severity (``info``, ``warning``, ``critical``) and an action
(``investigate``, ``retrain``, ``roll_back``); an alert with the same rule and subject
that fired within the rule's cooldown is kept in the report but marked ``suppressed`` and
not sent again. Sinks (backend kind ``alert_sink``): ``log``, ``file`` (JSON lines),
``webhook`` (HTTP POST of JSON).

Retraining triggers launch a configured chain: ``schedule`` (every N hours since the
chain's last run), ``drift`` (drifted share at or above a value), ``volume`` (new rows at
or above a value) and ``performance`` (a labelled or estimated metric below a value).

Rollback is an interface (backend kind ``rollback``) that deployment plugins implement:
``rollback(self, deployment, *, reason, context) -> Deployment | None``; a ``roll_back``
alert calls the backend the monitor names in ``rollback``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import math
from pathlib import Path
from typing import Any, ClassVar

import attrs
from tether import hookimpl
from tether.backends import AlertSink, Backend
from tether.errors import ConfigError, DataError

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


# --- Sinks --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LogSink(AlertSink):
    """Logs each alert (warning level, critical ones at error level)."""

    name: ClassVar[str] = "log"

    def send(self, alerts, *, context, report_id: str = "") -> None:
        for a in alerts:
            log = context.log.error if a["severity"] == "critical" else context.log.warning
            log("alert", rule=a["rule"], severity=a["severity"], action=a["action"], message=a["message"],
                report=report_id)


@attrs.frozen(kw_only=True)
class FileSink(AlertSink):
    """Appends one JSON line per alert to ``path``."""

    name: ClassVar[str] = "file"
    path: str

    def send(self, alerts, *, context, report_id: str = "") -> None:
        path = context.resolve_path(self.path) if context is not None else Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps({**a, "report": report_id}, sort_keys=True) + "\n" for a in alerts)


@attrs.frozen(kw_only=True)
class WebhookSink(AlertSink):
    """POSTs ``{"report": id, "alerts": [...]}`` as JSON to ``url``; non-2xx is a failure."""

    name: ClassVar[str] = "webhook"
    url: str
    timeout: float = 10.0
    headers: dict[str, str] = attrs.field(factory=dict)

    def send(self, alerts, *, context, report_id: str = "") -> None:
        import urllib.error
        import urllib.request

        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook url '{self.url}' must start with http:// or https://")
        body = json.dumps({"report": report_id, "alerts": alerts}, sort_keys=True).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", **self.headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise DataError(f"webhook {self.url} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(f"webhook {self.url} unreachable: {getattr(exc, 'reason', exc)}") from None


def deliver(alerts, sinks: list[dict[str, Any]], *, backends, context, report_id: str) -> list[str]:
    """Send unsuppressed alerts to every sink; returns delivery errors (never raises for them)."""
    to_send = [a for a in alerts if not a["suppressed"]]
    errors = []
    if not to_send:
        return errors
    for i, cfg in enumerate(sinks):
        sink = backends.create("alert_sink", cfg.get("plugin", ""), cfg.get("params"), where=f"sinks[{i}]")
        try:
            sink.send(to_send, context=context, report_id=report_id)
        except Exception as exc:  # noqa: BLE001 - a sink failing must not lose the report
            errors.append(f"sink {cfg.get('plugin')}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    return errors


# --- Retraining triggers and rollback -----------------------------------------------------


@attrs.frozen(kw_only=True)
class Trigger:
    """One retraining trigger; ``chain`` is the chain file launched when it fires (if
    ``launch``)."""

    type: str  # schedule | drift | volume | performance
    chain: str = ""
    launch: bool = True
    every_hours: float | None = None  # schedule
    share: float | None = None  # drift
    rows: int | None = None  # volume
    metric: str | None = None  # performance: e.g. roc_auc
    below: float | None = None
    source: str = "labelled"  # performance: labelled | estimated

    TYPES: ClassVar[tuple[str, ...]] = ("schedule", "drift", "volume", "performance")

    @classmethod
    def from_config(cls, raw: Any, where: str) -> Trigger:
        if not isinstance(raw, dict) or raw.get("type") not in cls.TYPES:
            raise ConfigError(f"{where}.type: expected one of {', '.join(cls.TYPES)}")
        known = {a.name for a in attrs.fields(cls)}
        if set(raw) - known:
            raise ConfigError(f"{where}: unknown key '{min(set(raw) - known)}' (allowed: {', '.join(sorted(known))})")
        need = {"schedule": ("every_hours",), "drift": ("share",), "volume": ("rows",),
                "performance": ("metric", "below")}[raw["type"]]
        for key in need:
            if raw.get(key) is None:
                raise ConfigError(f"{where}.{key}: required for a {raw['type']} trigger")
        return cls(**raw)

    def check(self, signals: dict[str, float], *, last_run: dt.datetime | None, now: dt.datetime) -> str | None:
        """The reason this trigger fires now, or ``None``."""
        if self.type == "schedule":
            if last_run is None or (now - last_run).total_seconds() / 3600 >= self.every_hours:
                return f"scheduled: last run {last_run.isoformat() if last_run else 'never'}, every {self.every_hours:g} h"
        elif self.type == "drift":
            share = signals.get("drift.share", 0.0)
            if share >= self.share:
                return f"drift: {share:.0%} of columns drifted (trigger at {self.share:.0%})"
        elif self.type == "volume":
            rows = signals.get("rows", 0)
            if rows >= self.rows:
                return f"volume: {int(rows)} new rows (trigger at {self.rows})"
        elif self.type == "performance":
            value = signals.get(f"{'performance' if self.source == 'labelled' else 'estimated'}.{self.metric}")
            if value is not None and value < self.below:
                return f"performance: {self.source} {self.metric} {value:.4f} < {self.below}"
        return None


def run_triggers(triggers: list[Trigger], signals, *, context, now=None) -> list[dict[str, Any]]:
    """Check every trigger; launch the chains of those that fire. Returns what happened."""
    from tether.config import load_chain
    from tether.runner import run_chain

    now = now or dt.datetime.now(dt.timezone.utc)
    out = []
    for trig in triggers:
        last_run = None
        if trig.chain:
            path = context.resolve_path(trig.chain)
            chain = load_chain(path, context.host)
            runs = context.store.find("run", name=chain.name, limit=1) if trig.type == "schedule" else []
            last_run = runs[0].started_at if runs else None
        reason = trig.check(signals, last_run=last_run, now=now)
        if reason is None:
            continue
        entry: dict[str, Any] = {"type": trig.type, "reason": reason, "chain": trig.chain, "run_id": None}
        if trig.chain and trig.launch:
            try:
                run, _ = run_chain(chain, context.host)
                entry.update(run_id=run.id, status=run.status)
            except Exception as exc:  # noqa: BLE001 - report the failed retraining, keep monitoring
                entry.update(status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        out.append(entry)
    return out


class Rollback(Backend):
    """Rolls a deployment back; deployment plugins implement it.

    Implement ``rollback(self, deployment, *, reason: str, context) -> Deployment | None``,
    returning the deployment now serving (or ``None`` if there was nothing to roll back to).
    A monitor with ``rollback: {plugin: NAME, params: {...}}`` calls it once per report when
    an unsuppressed alert with action ``roll_back`` fires and the monitored window belongs to
    a deployment.
    """

    kind = "rollback"


def roll_back(config: dict[str, Any] | None, deployment, alerts, *, backends, context) -> dict[str, Any] | None:
    wanted = [a for a in alerts if a["action"] == "roll_back" and not a["suppressed"]]
    if not wanted or not config:
        return None
    if deployment is None:
        return {"status": "skipped", "reason": "no deployment is monitored"}
    backend = backends.create("rollback", config.get("plugin", ""), config.get("params"), where="rollback")
    reason = "; ".join(a["message"] for a in wanted)
    result = backend.rollback(deployment, reason=reason, context=context)
    return {"status": "rolled_back" if result is not None else "nothing_to_roll_back",
            "deployment": getattr(result, "id", None), "reason": reason}


@hookimpl
def tether_add_backends(backends):
    for cls in (LogSink, FileSink, WebhookSink):
        backends.add(cls)
