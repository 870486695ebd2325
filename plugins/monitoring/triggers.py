"""Retraining triggers and the rollback action.

Triggers launch a configured chain: ``schedule`` (every N hours since the chain's last
run), ``drift`` (drifted share at or above a value), ``volume`` (new rows at or above a
value) and ``performance`` (a labelled or estimated metric below a value). A ``roll_back``
alert calls the rollback backend (kind ``rollback``, base :class:`tether.backends.Rollback`)
the monitor names in ``alerts.rollback``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import attrs
from tether.errors import ConfigError


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
                last = last_run.isoformat() if last_run else "never"
                return f"scheduled: last run {last}, every {self.every_hours:g} h"
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


def roll_back(config: dict[str, Any] | None, deployment, alerts, *, backends, context) -> dict[str, Any] | None:
    """Call the rollback backend once when an unsuppressed ``roll_back`` alert fired."""
    wanted = [a for a in alerts if a["action"] == "roll_back" and not a["suppressed"]]
    if not wanted or not config:
        return None
    if deployment is None:
        return {"status": "skipped", "reason": "no deployment is monitored"}
    backend = backends.create("rollback", config.get("plugin", ""), config.get("params"), where="alerts.rollback")
    reason = "; ".join(a["message"] for a in wanted)
    result = backend.rollback(deployment, reason=reason, context=context)
    return {"status": "rolled_back" if result is not None else "nothing_to_roll_back",
            "deployment": getattr(result, "id", None), "reason": reason}

