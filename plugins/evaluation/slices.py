"""Slices: the segments of the evaluated rows by a raw snapshot column's values, numeric
bins of one, or a user predicate, each with its metrics and bootstrap intervals."""

from __future__ import annotations

from typing import Any

from tether.callables import import_callable
from tether.errors import DataError, did_you_mean
from tether.records import SliceScore

from .bootstrap import intervals as bootstrap_intervals
from .inputs import Predictions
from .metrics import compute
from .params import SliceSpec

MISSING = "(missing)"
OTHER = "(other)"


def segments(spec: SliceSpec, frame) -> list[tuple[str, str, Any]]:
    """``(segment, kind, positions)`` of one slice over ``frame`` (the evaluated rows' raw
    columns, in the order of the predictions)."""
    import numpy as np
    import pandas as pd

    if spec.where is not None:
        func = import_callable(spec.where, where=f"slice '{spec.label}'")
        try:
            mask = np.asarray(func(frame), dtype=bool)
        except Exception as exc:  # noqa: BLE001 - the user's predicate; reported in one line
            raise DataError(f"slice '{spec.label}': {spec.where} raised {type(exc).__name__}: {exc}") from None
        if mask.shape != (len(frame),):
            raise DataError(f"slice '{spec.label}': {spec.where} returned {mask.shape[0] if mask.ndim else 1} "
                            f"values for {len(frame):,} rows; return one boolean per row")
        return [("true", "predicate", np.flatnonzero(mask))]
    column = frame[spec.column]
    if spec.bins is not None:
        if not pd.api.types.is_numeric_dtype(column):
            raise DataError(f"slice '{spec.label}': bins need a numeric column, '{spec.column}' is {column.dtype}")
        if isinstance(spec.bins, int):
            binned = pd.qcut(column, q=spec.bins, duplicates="drop")
        else:
            binned = pd.cut(column, bins=list(spec.bins), right=False, include_lowest=True)
        codes = binned.cat.codes.to_numpy()
        out = [(_interval(cat), "bin", np.flatnonzero(codes == i)) for i, cat in enumerate(binned.cat.categories)]
        missing = np.flatnonzero(codes < 0)
        return [s for s in out if len(s[2])] + ([(MISSING, "bin", missing)] if len(missing) else [])
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    order = np.argsort(-counts, kind="stable")
    out = [(str(uniques[i]), "category", np.flatnonzero(codes == i)) for i in order[: spec.top]]
    rest = order[spec.top:]
    if len(rest):
        out.append((OTHER, "category", np.flatnonzero(np.isin(codes, rest))))
    missing = np.flatnonzero(codes < 0)
    if len(missing):
        out.append((MISSING, "category", missing))
    return out


def _interval(cat) -> str:
    left, right = cat.left, cat.right
    close = "]" if cat.closed in ("right", "both") else ")"
    open_ = "[" if cat.closed in ("left", "both") else "("
    return f"{open_}{left:g}, {right:g}{close}"


def check_columns(specs: tuple[SliceSpec, ...], columns, where: str = "slices") -> None:
    """Raise DataError for a slice column the rows lack (with the closest name)."""
    columns = list(columns)
    for i, spec in enumerate(specs):
        if spec.column is not None and spec.column not in columns:
            raise DataError(f"{where}[{i}].column: no column '{spec.column}'{did_you_mean(spec.column, columns)} "
                            f"among the raw columns ({', '.join(columns[:12])}{', ...' if len(columns) > 12 else ''})")


def score(specs: tuple[SliceSpec, ...], frame, p: Predictions, *, families, rng, resamples: int,
          confidence: float, min_support: int) -> tuple[list[SliceScore], dict[str, str]]:
    """Every segment of every slice with its metrics and intervals."""
    out: list[SliceScore] = []
    methods: dict[str, str] = {}
    for spec in specs:
        for segment, kind, index in segments(spec, frame):
            part = p.take(index)
            values = compute(part)
            intervals, used = bootstrap_intervals(families, index, resamples=resamples, confidence=confidence,
                                                  rng=rng, points=values)
            methods.update({m: methods.get(m, u) if u == "exact" else u for m, u in used.items()})  # binned wins
            out.append(SliceScore(slice=spec.label, segment=segment, kind=kind, support=len(index), metrics=values,
                                  intervals=intervals, low_support=len(index) < min_support))
    return out, methods
