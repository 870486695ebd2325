"""What a monitor computes from two profiles: drift results, data health, model behaviour.

Everything here works on :class:`~tether.plugins.monitor_windows.DataProfile` sketches, so
it never needs the reference rows, and a current window of any size costs one pass.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import attrs
from tether.errors import ConfigError
from tether.records import DriftResult, Finding

from .drift import CATEGORICAL, NUMERIC, CategoricalSketch, NumericSketch, default_test, run_test

# --- Drift --------------------------------------------------------------------------------


def compare(reference, current, *, backends, tests: dict[str, list[str]] | None = None,
            test_params: dict[str, dict] | None = None, multivariate: tuple[str, ...] = (),
            columns: tuple[str, ...] = (), workers: int = 1) -> tuple[list[DriftResult], list[Finding]]:
    """Run each column's tests (configured in ``tests`` or :func:`default_test`).

    Columns missing on one side, retyped, or without values give findings, not results.
    """
    tests, test_params = tests or {}, test_params or {}
    unknown = [c for c in tests if c != "*" and c not in reference.columns and c not in current.columns]
    if unknown:
        raise ConfigError(f"tests: column '{unknown[0]}' is in neither the reference nor the current window")
    instances: dict[str, Any] = {}

    def test(name: str):
        if name not in instances:
            instances[name] = backends.create("drift", name, test_params.get(name), where=f"test_params.{name}")
        return instances[name]

    findings: list[Finding] = []
    jobs = []
    names = list(columns) if columns else [c for c in reference.columns if c in current.columns]
    for col in names:
        ref, cur = reference.columns.get(col), current.columns.get(col)
        if ref is None or cur is None:
            continue  # reported by the schema check
        side = "reference" if ref.count == 0 else "current window" if cur.count == 0 else None
        if side:
            if current.rows:
                findings.append(Finding(check="drift.no_values", severity="warning",
                                        message=f"column '{col}' has no non-missing values in the {side}; not tested",
                                        evidence={"column": col}))
            continue
        if ref.kind != cur.kind:
            findings.append(Finding(check="schema.retyped", severity="error",
                                    message=f"column '{col}' is {reference.types.get(col)} in the reference but "
                                            f"{current.types.get(col)} in the current window; not tested for drift",
                                    evidence={"column": col, "reference": reference.types.get(col),
                                              "current": current.types.get(col)},
                                    fix="cast it back to the reference type upstream, or rebuild the reference profile"))
            continue
        if col not in tests and looks_like_identifier(ref):
            findings.append(Finding(check="drift.identifier", severity="info",
                                    message=f"column '{col}' looks like an identifier ({ref.distinct} distinct values "
                                            f"in {ref.count} rows); not tested for drift",
                                    evidence={"column": col},
                                    fix=f"exclude it, or set tests: {{{col}: [...]}} to test it anyway"))
            continue
        chosen = tests.get(col) or tests.get("*") or [default_test(ref.kind, ref.count, max(ref.distinct, cur.distinct))]
        for name in chosen:
            t = test(name)
            if t.multivariate:
                raise ConfigError(f"tests.{col}: '{name}' is multivariate; list it under 'multivariate'")
            if t.applies_to == NUMERIC and ref.kind != NUMERIC:
                raise ConfigError(f"tests.{col}: '{name}' needs a numeric column; '{col}' is categorical")
            jobs.append((t, col, ref, cur))

    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda job: run_test(job[0], job[1], job[2], job[3]), jobs))
    else:
        results = [run_test(t, col, ref, cur) for t, col, ref, cur in jobs]
    for name in multivariate:
        t = test(name)
        if not t.multivariate:
            raise ConfigError(f"multivariate: '{name}' is a per-column test; list it under 'tests'")
        if reference.sample is None or current.sample is None or not reference.sample.num_rows or not current.sample.num_rows:
            findings.append(Finding(check="drift.no_sample", severity="warning",
                                    message=f"{name}: no row sample on one side; not run"))
            continue
        shared = [c for c in names if c in reference.sample.column_names and c in current.sample.column_names
                  and c in reference.columns and c in current.columns and reference.columns[c].kind == current.columns[c].kind]
        results.append(t.run_frames(reference.sample.to_pandas(), current.sample.to_pandas(), shared))
    return results, findings


def looks_like_identifier(sketch) -> bool:
    """A categorical column whose values are (almost) all distinct: ids, free text, keys."""
    return (isinstance(sketch, CategoricalSketch) and sketch.count >= 100
            and sketch.distinct >= 0.95 * sketch.count)


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


# --- Data health --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class HealthConfig:
    """Thresholds of the health checks (monitor params of the same names)."""

    max_lag_hours: float | None = None  # freshness: newest timestamp older than this -> error
    as_of: dt.datetime | None = None  # "now" for freshness (default: the current time)
    volume_change: float = 0.5  # |rows_current / rows_reference - 1| above this -> warning
    expected_rows: int | None = None  # compare volume with this instead of the reference rows
    missing_change: float = 0.1  # absolute change of a column's missing share -> warning
    out_of_range: float = 0.01  # share of current values outside the reference [min, max] -> warning
    unseen_share: float = 0.01  # share of rows in categories never seen in the reference -> warning
    cardinality_factor: float = 2.0  # distinct values grew by more than this factor -> warning
    expect: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # column -> {min, max, allowed, max_missing, max_distinct}


def _share(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else 0.0


def health(reference, current, config: HealthConfig) -> tuple[list[Finding], dict[str, Any]]:
    """Freshness, volume, missing shares, schema, validity, cardinality, unseen categories."""
    import numpy as np

    f: list[Finding] = []
    metrics: dict[str, Any] = {"rows_reference": reference.rows, "rows_current": current.rows}
    if current.rows == 0:
        f.append(Finding(check="volume.empty", severity="error", message="the current window has no rows",
                         fix="check that the upstream job wrote data for this window"))
    expected = config.expected_rows or reference.rows
    if expected and current.rows:
        ratio = current.rows / expected
        metrics["volume_ratio"] = ratio
        if abs(ratio - 1) > config.volume_change:
            f.append(Finding(check="volume.change", severity="warning",
                             message=f"current window has {current.rows} rows, {ratio:.2f}x the expected {expected}",
                             evidence={"rows": current.rows, "expected": expected, "ratio": ratio}))
    if current.time_max is not None:
        now = config.as_of or dt.datetime.now(dt.timezone.utc)
        lag = (now - current.time_max).total_seconds() / 3600
        metrics["freshness_lag_hours"] = lag
        if config.max_lag_hours is not None and lag > config.max_lag_hours:
            f.append(Finding(check="freshness", severity="error",
                             message=f"newest row is {lag:.1f} h old (limit {config.max_lag_hours} h)",
                             evidence={"newest": current.time_max.isoformat(), "lag_hours": lag}))
    added = [c for c in current.types if c not in reference.types]
    removed = [c for c in reference.types if c not in current.types]
    if current.rows or current.types:
        for c in added:
            f.append(Finding(check="schema.added", severity="info", message=f"column '{c}' is new in the current window",
                             evidence={"column": c, "type": current.types[c]}))
        for c in removed:
            f.append(Finding(check="schema.removed", severity="error",
                             message=f"column '{c}' of the reference is missing from the current window",
                             evidence={"column": c}, fix=f"restore '{c}' upstream or drop it from the monitored columns"))
    for c, rtype in reference.types.items():
        ctype = current.types.get(c)
        ref, cur = reference.columns.get(c), current.columns.get(c)
        if ctype is not None and "null" not in (ctype, rtype) and logical_type(ctype) != logical_type(rtype) and (
                ref is None or cur is None or ref.kind == cur.kind):
            f.append(Finding(check="schema.retyped", severity="warning",
                             message=f"column '{c}' changed type from {rtype} to {ctype}",
                             evidence={"column": c, "reference": rtype, "current": ctype}))
    per_column: dict[str, dict[str, Any]] = {}
    for c, ref in reference.columns.items():
        cur = current.columns.get(c)
        if cur is None or not current.rows:
            continue
        row: dict[str, Any] = {"missing_reference": _share(ref.missing, ref.total),
                               "missing_current": _share(cur.missing, cur.total),
                               "distinct_reference": ref.distinct, "distinct_current": cur.distinct}
        change = row["missing_current"] - row["missing_reference"]
        if abs(change) > config.missing_change:
            f.append(Finding(check="missing.change", severity="warning",
                             message=f"column '{c}' missing share went from {row['missing_reference']:.1%} to "
                                     f"{row['missing_current']:.1%}", evidence={"column": c, **row}))
        if cur.count == 0 and ref.count > 0:
            f.append(Finding(check="missing.all", severity="error",
                             message=f"column '{c}' is entirely missing in the current window", evidence={"column": c}))
        if ref.kind == cur.kind == NUMERIC and ref.count and cur.count:
            lo, hi = float(ref.values[0]), float(ref.values[-1])
            outside = cur.cdf_at(np.array([lo]), side="left")[0] + (cur.count - cur.cdf_at(np.array([hi]))[0])
            row["out_of_range"] = _share(outside, cur.count)
            if row["out_of_range"] > config.out_of_range:
                f.append(Finding(check="validity.range", severity="warning",
                                 message=f"column '{c}': {row['out_of_range']:.1%} of values outside the reference "
                                         f"range [{lo:g}, {hi:g}]", evidence={"column": c, "share": row["out_of_range"]}))
        if ref.kind == cur.kind == CATEGORICAL and cur.count and not looks_like_identifier(ref):
            unseen = {k: v for k, v in cur.counts.items() if k not in ref.counts}
            row["unseen_share"] = _share(sum(unseen.values()), cur.count)
            if unseen and row["unseen_share"] > config.unseen_share:
                top = sorted(unseen, key=lambda k: -unseen[k])[:5]
                f.append(Finding(check="categories.unseen", severity="warning",
                                 message=f"column '{c}': {len(unseen)} categories never seen in the reference "
                                         f"({row['unseen_share']:.1%} of rows), e.g. {', '.join(map(repr, top))}",
                                 evidence={"column": c, "categories": top, "share": row["unseen_share"]}))
        if ref.kind == CATEGORICAL and not looks_like_identifier(ref) and cur.distinct > max(config.cardinality_factor * ref.distinct, ref.distinct + 10):
            f.append(Finding(check="categories.explosion", severity="warning",
                             message=f"column '{c}' has {cur.distinct} distinct values, up from {ref.distinct}",
                             evidence={"column": c, "reference": ref.distinct, "current": cur.distinct}))
        per_column[c] = row
    for c, rule in config.expect.items():
        f.extend(_expectations(c, rule, current))
    metrics["columns"] = per_column
    return f, metrics


def _expectations(column: str, rule: dict[str, Any], current) -> list[Finding]:
    """Validity against a feature definition: ``min``, ``max``, ``allowed`` values, ``max_missing`` share."""
    import numpy as np

    allowed_keys = {"min", "max", "allowed", "max_missing", "max_distinct"}
    if not isinstance(rule, dict) or set(rule) - allowed_keys:
        raise ConfigError(f"expect.{column}: expected a mapping with {', '.join(sorted(allowed_keys))}, got {rule!r}")
    sk = current.columns.get(column)
    if sk is None:
        return [] if not current.rows else [Finding(check="validity.column", severity="error",
                                                    message=f"expected column '{column}' is not in the current window")]
    out = []
    if "max_missing" in rule and _share(sk.missing, sk.total) > rule["max_missing"]:
        out.append(Finding(check="validity.missing", severity="error",
                           message=f"column '{column}': {_share(sk.missing, sk.total):.1%} missing, above {rule['max_missing']:.1%}",
                           evidence={"column": column}))
    if "max_distinct" in rule and sk.distinct > rule["max_distinct"]:
        out.append(Finding(check="validity.cardinality", severity="error",
                           message=f"column '{column}': {sk.distinct} distinct values, above the maximum "
                                   f"{rule['max_distinct']}", evidence={"column": column, "distinct": sk.distinct}))
    if isinstance(sk, NumericSketch) and sk.count:
        below = sk.cdf_at(np.array([float(rule["min"])]), side="left")[0] if "min" in rule else 0
        above = sk.count - sk.cdf_at(np.array([float(rule["max"])]))[0] if "max" in rule else 0
        if below or above:
            out.append(Finding(check="validity.range", severity="error",
                               message=f"column '{column}': {below + above} values outside "
                                       f"[{rule.get('min', '-inf')}, {rule.get('max', 'inf')}]",
                               evidence={"column": column, "below": int(below), "above": int(above)}))
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


# --- Model behaviour ------------------------------------------------------------------------

CBPE_ASSUMPTIONS = (
    "scores are calibrated probabilities of the positive class (checked on the reference when it has labels)",
    "only the inputs shifted: P(label | inputs) is unchanged (no concept drift)",
    "the decision threshold is the one given (default 0.5)",
)


def estimate_performance(score: NumericSketch, threshold: float = 0.5) -> dict[str, float]:
    """Confidence-based performance estimation (CBPE) for a calibrated binary classifier:
    each row is a positive with probability equal to its score, so expected confusion
    counts, accuracy, precision, recall, F1 and ROC AUC follow from the score sketch."""
    import numpy as np

    v, c = score.values, score.counts.astype(np.float64)
    if not c.sum():
        return {}
    if v.min() < 0 or v.max() > 1:
        raise ConfigError("model.score: the score column holds values outside [0, 1]; CBPE needs probabilities")
    pos, neg = v * c, (1 - v) * c
    yes = v >= threshold
    tp, fp = pos[yes].sum(), neg[yes].sum()
    fn, tn = pos[~yes].sum(), neg[~yes].sum()
    n = c.sum()
    out = {"accuracy": (tp + tn) / n, "positive_rate": float(c[yes].sum() / n),
           "expected_label_rate": float(pos.sum() / n)}
    out["precision"] = tp / (tp + fp) if tp + fp else float("nan")
    out["recall"] = tp / (tp + fn) if tp + fn else float("nan")
    p, r = out["precision"], out["recall"]
    out["f1"] = 2 * p * r / (p + r) if p + r else float("nan")
    # AUC = P(score of a positive > score of a negative) + 1/2 P(tie), values sorted ascending
    neg_below = np.concatenate(([0.0], np.cumsum(neg)[:-1]))
    if pos.sum() and neg.sum():
        out["roc_auc"] = float(np.sum(pos * (neg_below + 0.5 * neg)) / (pos.sum() * neg.sum()))
    return {k: float(v) for k, v in out.items() if not math.isnan(v)}


def confidence(score: NumericSketch) -> float | None:
    import numpy as np

    if not score.count:
        return None
    return float(np.average(np.maximum(score.values, 1 - score.values), weights=score.counts))


def class_rates(sketch) -> dict[str, float]:
    cats = sketch.to_categories()
    total = cats.count
    return {k: v / total for k, v in sorted(cats.counts.items())} if total else {}


def labelled_performance(frame, *, label: str, score: str | None, prediction: str | None, threshold: float,
                         segments: tuple[str, ...] = ()) -> dict[str, Any]:
    """Metrics on predictions joined with their delayed labels, overall and per segment."""
    import numpy as np
    from sklearn import metrics as m

    def metrics_of(part) -> dict[str, float]:
        y = part[label].to_numpy()
        pred = part[prediction].to_numpy() if prediction else (part[score].to_numpy() >= threshold).astype(int)
        out = {"rows": float(len(part)), "accuracy": float(m.accuracy_score(y, pred))}
        if set(np.unique(y)) <= {0, 1}:
            out.update(precision=float(m.precision_score(y, pred, zero_division=0)),
                       recall=float(m.recall_score(y, pred, zero_division=0)),
                       f1=float(m.f1_score(y, pred, zero_division=0)), label_rate=float(np.mean(y)))
            if score and len(np.unique(y)) == 2:
                out["roc_auc"] = float(m.roc_auc_score(y, part[score].to_numpy()))
        return out

    result: dict[str, Any] = {"overall": metrics_of(frame), "segments": {}}
    for seg in segments:
        result["segments"][seg] = {str(k): metrics_of(g) for k, g in frame.groupby(seg, observed=True)}
    return result
