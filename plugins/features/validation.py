"""Validation findings: a frame's feature columns checked against their definitions
(type, valid range, allowed values, missing share, cardinality)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from tether.records import Finding

from .catalogue import FeatureDefinition
from .values import jsonable

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_KINDS = {"float": "fiu", "int": "iu", "bool": "b", "timestamp": "M"}

Add = Callable[..., None]


def validate_features(frame: pd.DataFrame, definitions: Iterable[FeatureDefinition]) -> list[Finding]:
    """Range, allowed values, type, missing share and cardinality against the definitions."""
    findings: list[Finding] = []
    for d in definitions:
        if d.name not in frame:
            continue

        def add(check: str, message: str, fix: str, d=d, **evidence):
            findings.append(Finding(check=f"feature.{check}", severity="error", message=message,
                                    evidence={"feature": d.name, "definition": d.id, **evidence}, fix=fix))

        col = frame[d.name]
        if d.dtype and not _check_type(d, col, add):
            continue
        _check_values(d, col, add)
        _check_counts(d, col, add)
    return findings


def _check_type(d: FeatureDefinition, col: Any, add: Add) -> bool:
    """Whether the column's dtype matches the definition's ``dtype`` (a finding if not)."""
    import pandas as pd

    kind = col.dtype.kind
    ok = (kind in _KINDS[d.dtype] if d.dtype in _KINDS else
          (isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(col.dtype) or kind == "O"))
    if d.dtype == "int" and kind == "f":  # pandas turns ints with gaps into floats
        present = col.dropna()
        ok = bool((present == present.round()).all())
    if not ok:
        add("type", f"feature '{d.name}' has type {col.dtype}, its definition says {d.dtype}",
            "fix the calculation or the definition's dtype", dtype=str(col.dtype), expected=d.dtype)
    return ok


def _check_values(d: FeatureDefinition, col: Any, add: Add) -> None:
    """``valid_range`` and ``allowed_values`` over the non-missing values."""
    import pandas as pd

    n, present = len(col), col.dropna()
    if d.valid_range is not None and len(present):
        numbers = pd.to_numeric(present, errors="coerce")
        lo, hi = d.valid_range
        outside = ((numbers < lo) if lo is not None else False) | ((numbers > hi) if hi is not None else False)
        outside = outside | numbers.isna()
        if outside.any():
            add("range", f"feature '{d.name}': {int(outside.sum())} of {n} values are outside "
                f"[{lo}, {hi}] (seen {jsonable(numbers.min())} .. {jsonable(numbers.max())})",
                "fix the source data or widen valid_range", outside=int(outside.sum()),
                min=jsonable(numbers.min()), max=jsonable(numbers.max()), valid_range=[lo, hi])
    if d.allowed_values and len(present):
        allowed = {str(v) for v in d.allowed_values}
        bad = present[~present.astype(str).isin(allowed)]
        if len(bad):
            examples = sorted(map(str, bad.unique()))[:5]
            add("allowed_values", f"feature '{d.name}': {len(bad)} of {n} values are not allowed, e.g. {examples}",
                "map them to allowed values or extend allowed_values", not_allowed=len(bad), examples=examples)


def _check_counts(d: FeatureDefinition, col: Any, add: Add) -> None:
    """``max_missing_share`` and ``max_cardinality``."""
    share = float(col.isna().mean()) if len(col) else 0.0
    if d.max_missing_share is not None and share > d.max_missing_share:
        add("missing_share", f"feature '{d.name}': {share:.1%} of values are missing, above the maximum "
            f"{d.max_missing_share:.1%}", "fix the source or raise max_missing_share",
            missing_share=share, max_missing_share=d.max_missing_share)
    if d.max_cardinality is not None:
        distinct = int(col.dropna().nunique())
        if distinct > d.max_cardinality:
            add("cardinality", f"feature '{d.name}' has {distinct} distinct values, above the maximum "
                f"{d.max_cardinality}", "group rare values or raise max_cardinality",
                distinct=distinct, max_cardinality=d.max_cardinality)
