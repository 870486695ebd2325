"""What differs between two runs: data, code, config (params and chain), environment,
seeds and metrics, as ``{section: {key: (a, b)}}`` holding only the keys that differ."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

SECTIONS = ("data", "code", "config", "environment", "seeds", "metrics")


def _flat_data(run: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stage_id, entry in sorted(run.data.items()):
        for key in ("id", "fingerprint", "snapshot_id", "seed"):
            if entry.get(key) is not None:
                out[f"{stage_id}.{key}"] = entry[key]
    return out


def _flat_environment(run: Any) -> dict[str, Any]:
    env = dict(run.environment)
    packages = env.pop("packages", {}) or {}
    return {**{k: v for k, v in env.items()}, **{f"packages.{k}": v for k, v in packages.items()}}


def _config(run: Any) -> dict[str, Any]:
    return {"chain": run.chain, "chain_digest": run.chain_digest, **{f"params.{k}": v for k, v in run.params.items()}}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (a value, b value)}`` for the keys whose values differ (``None``: absent)."""
    return {key: (a.get(key), b.get(key)) for key in sorted(set(a) | set(b))
            if key not in a or key not in b or not _same(a[key], b[key])}


def diff_runs(a: Any, b: Any, metrics_a: Mapping[str, float] | None = None,
              metrics_b: Mapping[str, float] | None = None) -> dict[str, dict[str, tuple[Any, Any]]]:
    """The differences between runs ``a`` and ``b`` by section (:data:`SECTIONS`); the
    metrics are the run records' latest values, overridden by ``metrics_a``/``metrics_b``
    (the store's latest values) when given."""
    sides = {
        "data": (_flat_data(a), _flat_data(b)),
        "code": (dict(a.code), dict(b.code)),
        "config": (_config(a), _config(b)),
        "environment": (_flat_environment(a), _flat_environment(b)),
        "seeds": (dict(a.seeds), dict(b.seeds)),
        "metrics": ({**a.metrics, **(metrics_a or {})}, {**b.metrics, **(metrics_b or {})}),
    }
    return {section: compare(*sides[section]) for section in SECTIONS}


def change(a: Any, b: Any) -> str:
    """``b - a`` for two numbers (``+0.0123``), else ``""``."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return f"{b - a:+.6g}" if numbers else ""


def backfill(store: Any, run: Any) -> Any:
    """``run`` with ``data`` and ``metrics`` rebuilt from its stage outputs when it was
    recorded before runs tracked them (snapshot/split ids, evaluation metrics)."""
    if run.data and run.metrics:
        return run
    data, metrics = {}, {}
    for stage in run.stages:
        if not stage.output_id or stage.stage not in ("snapshot", "split", "evaluate"):
            continue
        record = store.get(stage.output_id)
        if record is None:
            continue
        if record.kind == "snapshot":
            data[stage.id] = {"kind": "snapshot", "id": record.id, "fingerprint": record.fingerprint}
        elif record.kind == "split":
            data[stage.id] = {"kind": "split", "id": record.id, "snapshot_id": record.snapshot_id, "seed": record.seed}
        elif record.kind == "evaluation":
            prefix = "" if stage.id == "evaluate" else f"{stage.id}."
            metrics.update({f"{prefix}{k}": v for k, v in record.metrics.items()})
    return attrs.evolve(run, data=run.data or data, metrics=run.metrics or metrics)
