"""A model's history as intervals: which version held which status, alias or environment,
from when to when (``tether models history NAME [--at WHEN]``).

Statuses come from the version's registration and its transitions, aliases from the
alias log, environments from the deployment records of the model's versions (a
deployment holds its environment until the next deployment to that environment, a
rollback included; aborted rollouts and shadow deployments never held it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tether.errors import ConfigError

from .state import ModelLog, current_status, load


def _interval(mv_id: str, version: int, what: str, value: str, start: dt.datetime, end: dt.datetime | None,
              actor: str = "", reason: str = "") -> dict[str, Any]:
    return {"model_version_id": mv_id, "version": version, "what": what, "value": value, "from": start,
            "to": end, "actor": actor, "reason": reason}


def _statuses(log: ModelLog) -> list[dict[str, Any]]:
    rows = []
    for mv in log.versions:
        moves = [t for t in log.transitions if t.model_version_id == mv.id]
        starts = [(mv.created_at, current_status(mv.status), mv.registered_by, "registered")]
        starts += [(t.created_at, t.to_status, t.actor, t.reason) for t in moves]
        for i, (start, status, actor, reason) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else None
            rows.append(_interval(mv.id, mv.version, "status", status, start, end, actor, reason))
    return rows


def _aliases(log: ModelLog) -> list[dict[str, Any]]:
    rows = []
    numbers = {mv.id: mv.version for mv in log.versions}
    for i, change in enumerate(log.aliases):
        if change.model_version_id is None:
            continue
        later = [c for c in log.aliases[i + 1:] if c.alias == change.alias]
        end = later[0].created_at if later else None
        rows.append(_interval(change.model_version_id, numbers.get(change.model_version_id, 0), "alias",
                              change.alias, change.created_at, end, change.actor, change.reason))
    return rows


def _serving(store: Any, deployment: Any) -> bool:
    """Whether a deployment ever served its environment: not an aborted rollout, not a shadow."""
    try:
        from tether.plugins.rollout.state import current
    except ImportError:  # pragma: no cover - the rollout plugin is built in
        return True
    now = current(store, deployment)
    return now.state != "aborted" and now.strategy != "shadow"


def _environments(store: Any, log: ModelLog) -> list[dict[str, Any]]:
    numbers = {mv.id: mv.version for mv in log.versions}
    deployments = sorted((d for d in store.find("deployment") if d.model_version_id in numbers
                          and _serving(store, d)), key=lambda d: d.created_at)
    rows = []
    for i, dep in enumerate(deployments):
        env = getattr(dep, "environment", "") or dep.target
        later = [d for d in deployments[i + 1:] if (getattr(d, "environment", "") or d.target) == env]
        end = later[0].created_at if later else None
        rows.append(_interval(dep.model_version_id, numbers[dep.model_version_id], "environment", env,
                              dep.created_at, end, getattr(dep, "actor", ""), dep.id))
    return rows


def history(store: Any, name: str) -> list[dict[str, Any]]:
    """Every interval of model ``name`` (see the module docstring), ordered by start."""
    log = load(store, name)
    rows = _statuses(log) + _aliases(log) + _environments(store, log)
    return sorted(rows, key=lambda r: (r["from"], r["version"], r["what"]))


def parse_when(text: str) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of ``--at``: a date is the whole day (UTC), a date-time one instant."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--at: expected a date (2026-03-03) or a date-time (2026-03-03T14:00), "
                          f"got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    if len(text.strip()) <= 10:  # a date alone
        return when, when + dt.timedelta(days=1)
    return when, when + dt.timedelta(microseconds=1)


def at(rows: list[dict[str, Any]], start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """The intervals overlapping ``[start, end)``."""
    return [r for r in rows if r["from"] < end and (r["to"] is None or r["to"] > start)]
