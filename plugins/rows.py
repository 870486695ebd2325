"""Row-level facts shared by the split stage and the leakage checks.

One place each for: the split names (:data:`SPLITS`, :data:`LABELS`) and reading them
from a column (:func:`normalize_labels`); the stable row fingerprint
(:func:`row_fingerprints`); parsing time columns and durations (:func:`parse_times`,
:func:`parse_duration`); and the per-split summary a manifest or an audit records
(:func:`summarize_split`). Both :mod:`tether.plugins.splits` and
:mod:`tether.plugins.leakage` import from here; this module imports neither.
"""

from __future__ import annotations

from typing import Any

from tether.errors import DataError

SPLITS = ("train", "validation", "test")
LABELS = (*SPLITS, "excluded")
FINGERPRINT_METHOD = "tether-row-v1"
FINGERPRINT_BLOCK = 1 << 20  # rows hashed at a time

#: Split names accepted in a split column (after stripping and lower-casing).
LABEL_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation", "test": "test", "testing": "test", "holdout": "test",
                 "excluded": "excluded"}


def label_order(name: str) -> int:
    """Sort key putting split names in ``train, validation, test, excluded`` order."""
    return LABELS.index(name) if name in LABELS else len(LABELS)


def missing_column(column, columns, *, what: str) -> DataError:
    """``<what> 'col' is not in the data; did you mean 'cal'? (columns: ...)`` as a DataError."""
    from tether.errors import did_you_mean

    names = [str(c) for c in columns]
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    return DataError(f"{what} '{column}' is not in the data{did_you_mean(str(column), names)} (columns: {shown})")


# --- split names ---------------------------------------------------------------------------


def normalize_labels(values, *, where: str, column: str = ""):
    """Map split names in a column to ``train``/``validation``/``test``/``excluded``."""
    import numpy as np
    import pandas as pd

    # the distinct values are mapped, not every row: a column of millions holds a handful of names
    codes, uniques = pd.factorize(pd.Series(values), use_na_sentinel=True)
    if (codes < 0).any():
        pos = int((codes < 0).argmax())
        raise DataError(f"{where}: split column '{column}' is empty at row {pos}; every row needs a split")
    names = pd.Series(np.asarray(uniques, dtype=object)).astype(str)
    mapped = names.str.strip().str.lower().map(LABEL_ALIASES)
    if mapped.isna().any():
        bad = sorted(set(names[mapped.isna()]))[:5]
        raise DataError(
            f"{where}: split column '{column}' has values {', '.join(map(repr, bad))}; "
            f"use train/validation/test (or valid, val, dev, holdout)"
        )
    return np.asarray(mapped.to_numpy(), dtype=object)[codes]


# --- fingerprints ----------------------------------------------------------------------------


def _column_hashes(values):
    """uint64 hash per value of one column, after normalising dtype quirks."""
    import numpy as np
    import pandas as pd

    hash_array = pd.util.hash_array
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        times = values.dt.tz_convert("UTC") if isinstance(dtype, pd.DatetimeTZDtype) else values.dt.tz_localize("UTC")
        ints = times.astype("datetime64[ns, UTC]").dt.tz_localize(None).to_numpy().astype("int64")
        out = hash_array(ints.astype("float64"))
        out[values.isna().to_numpy()] = hash_array(np.array([np.nan]))[0]
        return out
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        floats = values.astype("float64").to_numpy(dtype="float64", na_value=np.nan) + 0.0  # -0.0 -> 0.0
        return hash_array(floats)
    # as hash_array(values as strings, categorize=True), without a string per row: the distinct
    # values are hashed as strings and taken by code; nulls hash to the maximum, as there
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        text = np.empty(len(uniques), dtype=object)
        text[:] = list(uniques)
        text = text.astype(str).astype(object)
    except TypeError:  # unhashable values (lists, dicts): every row as its string
        objects = values.astype("object").to_numpy()
        text = objects.astype(str).astype(object)
        text[pd.isna(objects)] = None
        return hash_array(text, categorize=True)
    out = np.full(len(codes), np.iinfo(np.uint64).max, dtype=np.uint64)
    present = codes >= 0
    out[present] = hash_array(text, categorize=False)[codes[present]]
    return out


def row_fingerprints(frame, columns=None):
    """A stable uint64 fingerprint per row, computed from values only.

    Columns are taken in sorted name order; numbers (ints, floats, booleans) are hashed as
    float64 (so ``1``, ``1.0`` and ``True`` agree and ``-0.0`` equals ``0.0``); timestamps as
    UTC nanoseconds (naive ones taken as UTC), whatever their unit; everything else as its
    string; every kind of null hashes alike. Each column's hashes are mixed with a hash of
    its name. The row position and index never enter, so the same row values give the
    same fingerprint in any order and after a CSV or Parquet round trip.
    """
    import numpy as np
    import pandas as pd

    columns = sorted(map(str, frame.columns if columns is None else columns))
    acc = np.full(len(frame), 0x9E3779B97F4A7C15, dtype=np.uint64)
    lookup = {str(c): c for c in frame.columns}
    salts = {name: pd.util.hash_array(np.array([name], dtype=object))[0] for name in columns}
    # a block of rows at a time: the per-column temporaries are a block's, not a column's
    with np.errstate(over="ignore"):
        for start in range(0, len(frame), FINGERPRINT_BLOCK):
            part = acc[start:start + FINGERPRINT_BLOCK]
            for name in columns:
                h = _column_hashes(frame[lookup[name]].iloc[start:start + FINGERPRINT_BLOCK])
                h ^= salts[name]
                part *= np.uint64(0x100000001B3)
                part ^= h
                part ^= part >> np.uint64(29)
    return acc


# --- time --------------------------------------------------------------------------------------


def _parse_time_text(text, column: str, where: str):
    """ISO-8601 strings as timestamps; mixed zones and unparseable values are DataErrors."""
    import pandas as pd

    try:
        return pd.to_datetime(text, format="ISO8601")
    except (ValueError, TypeError) as exc:
        if "Mixed timezones" in str(exc) or "mix tz-aware" in str(exc):
            raise DataError(
                f"{where}: time column '{column}' mixes time zones (or zoned and unzoned values); "
                f"write every value in one zone, e.g. UTC with a 'Z' suffix"
            ) from None
        coerced = pd.to_datetime(text, format="ISO8601", errors="coerce")
        bad = coerced.isna() & text.notna()
        if bad.any():
            pos = int(bad.to_numpy().argmax())
            raise DataError(
                f"{where}: time column '{column}' has {int(bad.sum())} unparseable values, e.g. "
                f"{text.iloc[pos]!r} at row {pos}; use ISO-8601 timestamps"
            ) from None
        raise DataError(f"{where}: time column '{column}' cannot be parsed: {str(exc).splitlines()[0]}") from None


def _as_utc(times):
    import pandas as pd

    if isinstance(times.dtype, pd.DatetimeTZDtype):
        return times.dt.tz_convert("UTC")
    return times.dt.tz_localize("UTC")


def parse_times(values, column: str, *, where: str = "split"):
    """A time column as UTC ``datetime64[ns, UTC]``; naive values are taken as UTC.

    Unparseable values, missing values and strings mixing time zones are :class:`DataError`.
    """
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        times = _as_utc(values)
    elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(
            f"{where}: time column '{column}' holds numbers ({values.dtype}); convert them to timestamps first"
        )
    else:
        times = _as_utc(_parse_time_text(values.astype("object"), column, where))
    nulls = int(times.isna().sum())
    if nulls:
        pos = int(times.isna().to_numpy().argmax())
        raise DataError(
            f"{where}: time column '{column}' has {nulls} missing values (first at row {pos}); fill or drop them"
        )
    return times.astype("datetime64[ns, UTC]")


def parse_duration(value: str):
    """A duration such as ``7d``, ``12h`` or ``1 days 02:00:00`` as a ``pandas.Timedelta``."""
    import re

    import pandas as pd

    return pd.Timedelta(re.sub(r"(?<=\d)\s*d\b", "D", str(value).strip()))


# --- per-split summary -----------------------------------------------------------------------


def _label_summary(y, labels, present) -> dict[str, Any]:
    """Class balance per split (at most 50 classes), else the mean of a numeric label."""
    import pandas as pd

    if y.nunique(dropna=True) <= 50:
        balance = {}
        for s in present:
            counts = y[labels == s].value_counts(dropna=False)
            total = max(int(counts.sum()), 1)
            balance[s] = {str(k): round(int(v) / total, 6) for k, v in counts.sort_index().items()}
        return {"class_balance": balance}
    num = pd.to_numeric(y, errors="coerce")
    return {"label_mean": {s: float(num[labels == s].mean()) for s in present}}


def summarize_split(frame, labels, *, entity_column=None, time_column=None, label=None) -> dict[str, Any]:
    """Per-split facts shown by ``tether splits show``: rows, time range, class balance, entities."""
    import numpy as np

    labels = np.asarray(labels, dtype=object)
    present = [s for s in LABELS if np.any(labels == s)]
    out: dict[str, Any] = {"rows": {s: int(np.sum(labels == s)) for s in present}}
    if time_column and time_column in frame:
        times = parse_times(frame[time_column], time_column)
        out["time_range"] = {
            s: [times[labels == s].min().isoformat(), times[labels == s].max().isoformat()] for s in present
        }
    if label and label in frame:
        out.update(_label_summary(frame[label], labels, present))
    if entity_column and entity_column in frame:
        ent = frame[entity_column]
        out["entities"] = {s: int(ent[labels == s].nunique()) for s in present}
    return out
