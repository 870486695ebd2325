"""Data-health checks of a current window against its reference profile: freshness,
volume, missing shares, schema, validity, cardinality and unseen categories.

Everything works on sketches (:mod:`.sketches`), so the reference rows are never needed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tether.errors import ConfigError
from tether.records import Finding

from .params import HealthParams
from .sketches import CATEGORICAL, NUMERIC, NumericSketch, looks_like_identifier


def _share(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else 0.0


def logical_type(arrow_type: str) -> str:
    """Arrow type strings with storage-only differences removed: large_string == string,
    dictionary<values=string> == string, timestamp units ignored."""
    import re

    t = arrow_type.replace("large_string", "string").replace("large_binary", "binary").replace("large_list", "list")
    t = t.replace("large_utf8", "string").replace("utf8", "string")
    m = re.match(r"dictionary<values=([^,]+),", t)
    if m:
        t = m.group(1)
    return re.sub(r"timestamp\[(s|ms|us|ns)(, )?", "timestamp[", t).replace("timestamp[]", "timestamp")


def health(reference, current, params: HealthParams) -> tuple[list[Finding], dict[str, Any]]:
    """Every health finding of ``current`` and the metrics behind them."""
    metrics: dict[str, Any] = {"rows_reference": reference.rows, "rows_current": current.rows}
    findings = _volume(reference, current, params, metrics) + _freshness(current, params, metrics)
    findings += _schema(reference, current)
    per_column: dict[str, dict[str, Any]] = {}
    for c, ref in reference.columns.items():
        cur = current.columns.get(c)
        if cur is None or not current.rows:
            continue
        per_column[c] = _column(c, ref, cur, params, findings)
    for c, rule in params.expect.items():
        findings.extend(_expectations(c, rule, current))
    metrics["columns"] = per_column
    return findings, metrics


def _volume(reference, current, params: HealthParams, metrics: dict[str, Any]) -> list[Finding]:
    out = []
    if current.rows == 0:
        out.append(Finding(check="volume.empty", severity="error", message="the current window has no rows",
                           fix="check that the upstream job wrote data for this window"))
    expected = params.expected_rows or reference.rows
    if expected and current.rows:
        ratio = current.rows / expected
        metrics["volume_ratio"] = ratio
        if abs(ratio - 1) > params.volume_change:
            out.append(Finding(check="volume.change", severity="warning",
                               message=f"current window has {current.rows} rows, {ratio:.2f}x the expected {expected}",
                               evidence={"rows": current.rows, "expected": expected, "ratio": ratio}))
    return out


def _freshness(current, params: HealthParams, metrics: dict[str, Any]) -> list[Finding]:
    if current.time_max is None:
        return []
    now = params.as_of or dt.datetime.now(dt.timezone.utc)
    lag = (now - current.time_max).total_seconds() / 3600
    metrics["freshness_lag_hours"] = lag
    if params.max_lag_hours is not None and lag > params.max_lag_hours:
        return [Finding(check="freshness", severity="error",
                        message=f"newest row is {lag:.1f} h old (limit {params.max_lag_hours} h)",
                        evidence={"newest": current.time_max.isoformat(), "lag_hours": lag})]
    return []


def _schema(reference, current) -> list[Finding]:
    out = []
    if current.rows or current.types:
        for c in (c for c in current.types if c not in reference.types):
            out.append(Finding(check="schema.added", severity="info",
                               message=f"column '{c}' is new in the current window",
                               evidence={"column": c, "type": current.types[c]}))
        for c in (c for c in reference.types if c not in current.types):
            out.append(Finding(check="schema.removed", severity="error",
                               message=f"column '{c}' of the reference is missing from the current window",
                               evidence={"column": c},
                               fix=f"restore '{c}' upstream or drop it from the monitored columns"))
    for c, rtype in reference.types.items():
        ctype = current.types.get(c)
        ref, cur = reference.columns.get(c), current.columns.get(c)
        if ctype is not None and "null" not in (ctype, rtype) and logical_type(ctype) != logical_type(rtype) and (
                ref is None or cur is None or ref.kind == cur.kind):
            out.append(Finding(check="schema.retyped", severity="warning",
                               message=f"column '{c}' changed type from {rtype} to {ctype}",
                               evidence={"column": c, "reference": rtype, "current": ctype}))
    return out


def _column(c: str, ref, cur, params: HealthParams, findings: list[Finding]) -> dict[str, Any]:
    """One column's health metrics; appends its findings to ``findings``."""
    row: dict[str, Any] = {"missing_reference": _share(ref.missing, ref.total),
                           "missing_current": _share(cur.missing, cur.total),
                           "distinct_reference": ref.distinct, "distinct_current": cur.distinct}
    if abs(row["missing_current"] - row["missing_reference"]) > params.missing_change:
        findings.append(Finding(check="missing.change", severity="warning",
                                message=f"column '{c}' missing share went from {row['missing_reference']:.1%} to "
                                        f"{row['missing_current']:.1%}", evidence={"column": c, **row}))
    if cur.count == 0 and ref.count > 0:
        findings.append(Finding(check="missing.all", severity="error",
                                message=f"column '{c}' is entirely missing in the current window",
                                evidence={"column": c}))
    if ref.kind == cur.kind == NUMERIC and ref.count and cur.count:
        findings.extend(_out_of_range(c, ref, cur, params, row))
    if ref.kind == cur.kind == CATEGORICAL and cur.count and not looks_like_identifier(ref):
        findings.extend(_unseen(c, ref, cur, params, row))
    if ref.kind == CATEGORICAL and not looks_like_identifier(ref) and \
            cur.distinct > max(params.cardinality_factor * ref.distinct, ref.distinct + 10):
        findings.append(Finding(check="categories.explosion", severity="warning",
                                message=f"column '{c}' has {cur.distinct} distinct values, up from {ref.distinct}",
                                evidence={"column": c, "reference": ref.distinct, "current": cur.distinct}))
    return row


def _out_of_range(c: str, ref, cur, params: HealthParams, row: dict[str, Any]) -> list[Finding]:
    import numpy as np

    lo, hi = float(ref.values[0]), float(ref.values[-1])
    outside = cur.cdf_at(np.array([lo]), side="left")[0] + (cur.count - cur.cdf_at(np.array([hi]))[0])
    row["out_of_range"] = _share(outside, cur.count)
    if row["out_of_range"] <= params.out_of_range:
        return []
    return [Finding(check="validity.range", severity="warning",
                    message=f"column '{c}': {row['out_of_range']:.1%} of values outside the reference "
                            f"range [{lo:g}, {hi:g}]", evidence={"column": c, "share": row["out_of_range"]})]


def _unseen(c: str, ref, cur, params: HealthParams, row: dict[str, Any]) -> list[Finding]:
    unseen = {k: v for k, v in cur.counts.items() if k not in ref.counts}
    row["unseen_share"] = _share(sum(unseen.values()), cur.count)
    if not unseen or row["unseen_share"] <= params.unseen_share:
        return []
    top = sorted(unseen, key=lambda k: -unseen[k])[:5]
    return [Finding(check="categories.unseen", severity="warning",
                    message=f"column '{c}': {len(unseen)} categories never seen in the reference "
                            f"({row['unseen_share']:.1%} of rows), e.g. {', '.join(map(repr, top))}",
                    evidence={"column": c, "categories": top, "share": row["unseen_share"]})]


EXPECT_KEYS = ("min", "max", "allowed", "max_missing", "max_distinct")


def _expectations(column: str, rule: dict[str, Any], current) -> list[Finding]:
    """Validity against a feature definition: ``min``, ``max``, ``allowed`` values, ``max_missing`` share."""
    if not isinstance(rule, dict) or set(rule) - set(EXPECT_KEYS):
        raise ConfigError(f"health.expect.{column}: expected a mapping with {', '.join(sorted(EXPECT_KEYS))}, "
                          f"got {rule!r}")
    sk = current.columns.get(column)
    if sk is None:
        return [] if not current.rows else [Finding(check="validity.column", severity="error",
                                                    message=f"expected column '{column}' is not in the current window")]
    out = []
    if "max_missing" in rule and _share(sk.missing, sk.total) > rule["max_missing"]:
        out.append(Finding(check="validity.missing", severity="error",
                           message=f"column '{column}': {_share(sk.missing, sk.total):.1%} missing, "
                                   f"above {rule['max_missing']:.1%}", evidence={"column": column}))
    if "max_distinct" in rule and sk.distinct > rule["max_distinct"]:
        out.append(Finding(check="validity.cardinality", severity="error",
                           message=f"column '{column}': {sk.distinct} distinct values, above the maximum "
                                   f"{rule['max_distinct']}", evidence={"column": column, "distinct": sk.distinct}))
    out.extend(_declared_range(column, rule, sk))
    if "allowed" in rule:
        allowed = {str(v) for v in rule["allowed"]}
        cats = sk.to_categories() if isinstance(sk, NumericSketch) else sk
        bad = {k: v for k, v in cats.counts.items() if k not in allowed}
        if bad:
            out.append(Finding(check="validity.allowed", severity="error",
                               message=f"column '{column}': {sum(bad.values())} values not allowed, e.g. "
                                       f"{', '.join(map(repr, sorted(bad)[:5]))}",
                               evidence={"column": column, "values": sorted(bad)[:20]}))
    return out


def _declared_range(column: str, rule: dict[str, Any], sk) -> list[Finding]:
    import numpy as np

    if not isinstance(sk, NumericSketch) or not sk.count:
        return []
    below = sk.cdf_at(np.array([float(rule["min"])]), side="left")[0] if "min" in rule else 0
    above = sk.count - sk.cdf_at(np.array([float(rule["max"])]))[0] if "max" in rule else 0
    if not (below or above):
        return []
    return [Finding(check="validity.range", severity="error",
                    message=f"column '{column}': {below + above} values outside "
                            f"[{rule.get('min', '-inf')}, {rule.get('max', 'inf')}]",
                    evidence={"column": column, "below": int(below), "above": int(above)})]
