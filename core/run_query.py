"""Querying what runs recorded: ``tether runs ls`` filters (``--where 'roc_auc>0.8'``,
``--tag k=v``, ``--snapshot``, ``--status``) and metric series summaries (``runs show``)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .errors import ConfigError

_WHERE = re.compile(r"^\s*(?P<key>[^<>=!]+(?:\[[^\]]*\])?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>\S+)\s*$")
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__,
        "==": float.__eq__, "!=": float.__ne__}


@attrs.frozen
class Condition:
    """One ``--where`` condition: ``metric OP number``."""

    key: str
    op: str
    value: float

    def holds(self, metrics: Mapping[str, float]) -> bool:
        """Whether the run's metrics satisfy it; a run without the metric does not."""
        if self.key not in metrics:
            return False
        return _OPS[self.op](float(metrics[self.key]), self.value)


def parse_where(text: str) -> Condition:
    """``"roc_auc>0.8"`` as a :class:`Condition`; a malformed one is a ConfigError."""
    match = _WHERE.match(text or "")
    if match is None:
        raise ConfigError(f"--where {text!r}: expected METRIC OP NUMBER with OP one of > >= < <= == != "
                          "(e.g. 'roc_auc>0.8')", key="where")
    try:
        value = float(match["value"])
    except ValueError:
        raise ConfigError(f"--where {text!r}: {match['value']!r} is not a number", key="where") from None
    if not math.isfinite(value):
        raise ConfigError(f"--where {text!r}: the threshold must be a finite number", key="where")
    return Condition(match["key"].strip(), match["op"], value)


def parse_tag(text: str) -> tuple[str, str]:
    """``"team=risk"`` as ``("team", "risk")``; anything else is a ConfigError."""
    key, sep, value = (text or "").partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--tag {text!r}: expected KEY=VALUE", key="tag")
    return key.strip(), value


def _store_latest(store: Any, run_ids: list[str]) -> dict[str, dict[str, float]]:
    latest = getattr(store, "latest_metrics", None)
    if not callable(latest) or not run_ids:
        return {}
    try:
        return latest(run_ids)
    except NotImplementedError:
        return {}


def select_runs(store: Any, runs: list[Any], *, status: str | None = None,
                tags: Iterable[tuple[str, str]] = (),
                snapshot: str | None = None, conditions: Iterable[Condition] = ()
                ) -> tuple[list[Any], dict[str, dict[str, float]]]:
    """The runs matching every filter, and the latest metrics of each (the store's values
    over the run record's): ``status``, all ``tags``, a ``snapshot`` id among the run's
    data, and every ``--where`` condition."""
    conditions, tags = list(conditions), list(tags)
    kept = [r for r in runs if (status is None or r.status == status)
            and all(r.tags.get(k) == v for k, v in tags)
            and (snapshot is None or _used(r, snapshot))]
    stored = _store_latest(store, [r.id for r in kept]) if conditions else {}
    metrics = {r.id: {**r.metrics, **stored.get(r.id, {})} for r in kept}
    kept = [r for r in kept if all(c.holds(metrics[r.id]) for c in conditions)]
    return kept, metrics


def series_summaries(store: Any, run: Any) -> dict[str, dict[str, Any]]:
    """Per metric key of ``run``: ``count``, ``steps`` (``first..last``), ``min``, ``max``
    and ``last`` (the latest value), from the store's rows (else the run's latest values)."""
    get = getattr(store, "get_metrics", None)
    try:
        rows = get(run.id) if callable(get) else []
    except NotImplementedError:
        rows = []
    grouped: dict[str, list[tuple[float, int | None]]] = {}
    for key, value, step, _stamp in rows:
        grouped.setdefault(key, []).append((value, step))
    out: dict[str, dict[str, Any]] = {}
    for key, values in grouped.items():
        numbers = [v for v, _ in values]
        steps = [s for _, s in values if s is not None]
        out[key] = {"count": len(values), "steps": f"{min(steps)}..{max(steps)}" if steps else "",
                    "min": min(numbers), "max": max(numbers), "last": run.metrics.get(key, numbers[-1])}
    for key, value in run.metrics.items():
        out.setdefault(key, {"count": 1, "steps": "", "min": value, "max": value, "last": value})
    return dict(sorted(out.items()))


def _used(run: Any, record_id: str) -> bool:
    """Whether ``run`` used or made ``record_id`` (its data, or a stage output of older runs)."""
    return (any(e.get("id") == record_id or e.get("snapshot_id") == record_id for e in run.data.values())
            or any(s.output_id == record_id for s in run.stages))
