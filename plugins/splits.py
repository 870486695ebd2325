"""The split stage: strategies that assign rows to train/validation/test, recorded by row.

Strategies (``plugin:`` names): ``random``, ``stratified``, ``group``, ``stratified_group``,
``time``, ``time_group``, ``column`` (a split made elsewhere, read from a column) and
``custom`` (a user function). Each returns one label per row: ``train``, ``validation``,
``test``, or ``excluded`` (rows left out on purpose, e.g. inside a time gap).

The stage records a :class:`~tether.records.SplitManifest`: the assignment by stable row
fingerprint (see :func:`row_fingerprints`), the strategy and its parameters, a summary
per split (sizes, time range, class balance, entity counts) and the findings of the
leakage checks the chain's ``policy`` enables (see :mod:`tether.plugins.leakage`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

import attrs

from tether import hookimpl
from tether.backends import SplitStrategy
from tether.errors import ConfigError, DataError
from tether.records import SplitManifest

SPLITS = ("train", "validation", "test")
LABELS = (*SPLITS, "excluded")
FINGERPRINT_METHOD = "tether-row-v1"


# --- shared parameters -------------------------------------------------------------------


def _check_ratio(instance, attribute, value):
    if not 0 <= value <= 1:
        raise ValueError(f"must be between 0 and 1, got {value}")


@attrs.frozen(kw_only=True)
class _Declared(SplitStrategy):
    """Parameters every built-in strategy accepts: split shares and the declared columns.

    ``entity_column``, ``time_column`` and ``label`` are what the leakage checks use;
    ``label_definition`` is recorded on the manifest; ``features_from`` names a feature
    catalogue (YAML) giving each feature's availability time; ``ignore_columns`` are left
    out of the duplicate checks and target scans (e.g. a surrogate row id); ``html`` is a
    path the stage writes an HTML report of the split and its findings to (also when a
    check fails).
    """

    train: float = attrs.field(default=0.7, validator=_check_ratio)
    validation: float = attrs.field(default=0.15, validator=_check_ratio)
    test: float = attrs.field(default=0.15, validator=_check_ratio)
    seed: int = 0
    entity_column: str | None = None
    time_column: str | None = None
    label: str | None = None
    label_definition: str = ""
    features_from: str | None = None
    ignore_columns: tuple[str, ...] = ()
    html: str | None = None

    def __attrs_post_init__(self) -> None:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(
                f"split ratios train {self.train} + validation {self.validation} + test {self.test} "
                f"sum to {total:g}, not 1; make them add up to 1"
            )
        if self.train <= 0:
            raise ValueError("train must be greater than 0")

    def preflight(self, *, context) -> None:
        """Before the run: the feature catalogue must be readable and ``policy.leakage`` valid."""
        from tether.plugins.leakage import configured_checks, load_catalog

        if self.features_from:
            load_catalog(context.resolve_path(self.features_from))
        configured_checks((context.policy or {}).get("leakage"), host=context.host)

    @property
    def shares(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def declared_columns(self) -> dict[str, str]:
        roles = {"entity": self.entity_column, "time": self.time_column, "label": self.label}
        return {role: col for role, col in roles.items() if col}


def _py(value):
    """A numpy scalar as a plain Python value, for messages."""
    return value.item() if hasattr(value, "item") else value


def _require(frame, column: str | None, param: str, strategy: str) -> str:
    if not column:
        raise ConfigError(f"{strategy} split: parameter '{param}' is required")
    if column not in frame.columns:
        raise DataError(
            f"{strategy} split: {param} '{column}' is not a column of the data "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    return column


def _counts_from_shares(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Integer row counts per split summing to ``n`` (largest remainder)."""
    raw = {k: n * v for k, v in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    left = n - sum(counts.values())
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[:left]:
        counts[k] += 1
    return counts


def _labels_from_order(order, shares: dict[str, float]):
    """Label rows taken in ``order`` (positions) by cumulative shares."""
    import numpy as np

    n = len(order)
    counts = _counts_from_shares(n, shares)
    labels = np.empty(n, dtype=object)
    start = 0
    for name in SPLITS:
        labels[order[start:start + counts[name]]] = name
        start += counts[name]
    return labels


def group_codes(frame, column: str, strategy: str):
    """Integer codes of a group column; nulls are a :class:`DataError`."""
    import pandas as pd

    values = frame[column]
    nulls = int(values.isna().sum())
    if nulls:
        first = int(values.isna().to_numpy().argmax())
        raise DataError(
            f"{strategy} split: group column '{column}' has {nulls} null values (first at row {first}); "
            f"fill or drop them so every row belongs to an entity"
        )
    codes, uniques = pd.factorize(values, sort=False)
    return codes, uniques


def parse_times(values, column: str, *, where: str = "split"):
    """A time column as UTC ``datetime64[ns, UTC]``; naive values are taken as UTC.

    Unparseable values, missing values and strings mixing time zones are :class:`DataError`.
    """
    import pandas as pd

    if isinstance(values.dtype, pd.DatetimeTZDtype):
        times = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_any_dtype(values.dtype):
        times = values.dt.tz_localize("UTC")
    elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(
            f"{where}: time column '{column}' holds numbers ({values.dtype}); convert them to timestamps first"
        )
    else:
        text = values.astype("object")
        try:
            times = pd.to_datetime(text, format="ISO8601")
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
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            times = times.dt.tz_convert("UTC")
        else:
            times = times.dt.tz_localize("UTC")
    nulls = int(times.isna().sum())
    if nulls:
        pos = int(times.isna().to_numpy().argmax())
        raise DataError(
            f"{where}: time column '{column}' has {nulls} missing values (first at row {pos}); fill or drop them"
        )
    return times.astype("datetime64[ns, UTC]")


def _parse_instant(value: str, param: str, strategy: str):
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{strategy} split: {param} {value!r} is not an ISO-8601 timestamp") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def parse_duration(value: str):
    """A duration such as ``7d``, ``12h`` or ``1 days 02:00:00`` as a ``pandas.Timedelta``."""
    import re

    import pandas as pd

    return pd.Timedelta(re.sub(r"(?<=\d)\s*d\b", "D", str(value).strip()))


def _parse_gap(value: str | None, strategy: str):
    import pandas as pd

    if not value:
        return pd.Timedelta(0)
    try:
        gap = parse_duration(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{strategy} split: gap {value!r} is not a duration such as '7d' or '12h'") from None
    if gap < pd.Timedelta(0):
        raise ConfigError(f"{strategy} split: gap {value!r} must not be negative")
    return gap


# --- strategies --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RandomSplit(_Declared):
    """Rows shuffled with ``seed`` and cut by the shares; ``stratify`` keeps a column's class balance."""

    name: ClassVar[str] = "random"
    stratify: str | None = None

    def assign(self, frame, *, context=None):
        import numpy as np
        import pandas as pd

        n = len(frame)
        stratify = self._stratify_column(frame)
        if stratify is None:
            order = np.random.default_rng(self.seed).permutation(n)
            return pd.Series(_labels_from_order(order, self.shares), index=frame.index, dtype=object)
        from sklearn.model_selection import train_test_split

        classes = frame[stratify]
        if classes.isna().any():
            raise DataError(
                f"{self.name} split: stratify column '{stratify}' has {int(classes.isna().sum())} null values; "
                f"fill them or drop the rows"
            )
        counts = classes.value_counts()
        small = counts[counts < 2]
        if len(small):
            raise DataError(
                f"{self.name} split: stratify column '{stratify}' has class {_py(small.index[0])!r} with only "
                f"{int(small.iloc[0])} row; stratifying needs at least 2 rows per class (merge or drop rare classes)"
            )
        idx = np.arange(n)
        strat = classes.to_numpy()
        labels = np.full(n, "train", dtype=object)
        held = self.validation + self.test
        if held == 0:
            return pd.Series(labels, index=frame.index, dtype=object)
        try:
            rest, held_idx = train_test_split(idx, test_size=held, random_state=self.seed, stratify=strat)
            if self.validation and self.test:
                val_idx, test_idx = train_test_split(held_idx, test_size=self.test / held, random_state=self.seed,
                                                     stratify=strat[held_idx])
            else:
                val_idx, test_idx = (held_idx, idx[:0]) if self.validation else (idx[:0], held_idx)
        except ValueError as exc:
            raise DataError(f"{self.name} split: cannot stratify on '{stratify}': {exc}") from None
        labels[val_idx], labels[test_idx] = "validation", "test"
        return pd.Series(labels, index=frame.index, dtype=object)

    def _stratify_column(self, frame):
        if self.stratify is None:
            return None
        return _require(frame, self.stratify, "stratify", self.name)


@attrs.frozen(kw_only=True)
class StratifiedSplit(RandomSplit):
    """Like ``random`` with ``stratify`` defaulting to ``label``: every split keeps the class balance."""

    name: ClassVar[str] = "stratified"

    def _stratify_column(self, frame):
        column = self.stratify or self.label
        if not column:
            raise ConfigError("stratified split: set 'stratify' or 'label' to the class column")
        return _require(frame, column, "stratify", self.name)


def _assign_groups(group_rows, order, shares: dict[str, float], names, strategy: str, column: str):
    """Give whole groups (taken in ``order``) to splits so row counts follow the shares."""
    import numpy as np

    total = int(group_rows.sum())
    largest = max(shares, key=shares.get)
    capacity = shares[largest] * total
    too_big = np.flatnonzero(group_rows > capacity)
    if len(too_big):
        g = too_big[0]
        raise DataError(
            f"{strategy} split: entity {_py(names[g])!r} of '{column}' has {int(group_rows[g])} rows "
            f"({group_rows[g] / total:.0%} of the data), more than the largest split ({largest}, "
            f"{shares[largest]:.0%}) can hold; change the shares or the entity column"
        )
    sizes = group_rows[order]
    ends = np.cumsum(sizes)
    mids = (ends - sizes / 2) / total
    cuts = np.cumsum([shares[s] for s in SPLITS])
    which = np.searchsorted(cuts, mids, side="right").clip(0, 2)
    group_split = np.empty(len(group_rows), dtype=object)
    group_split[order] = np.array(SPLITS, dtype=object)[which]
    return group_split


@attrs.frozen(kw_only=True)
class GroupSplit(_Declared):
    """Whole entities (``entity_column``) shuffled with ``seed``; no entity is in two splits."""

    name: ClassVar[str] = "group"

    def assign(self, frame, *, context=None):
        import numpy as np
        import pandas as pd

        column = _require(frame, self.entity_column, "entity_column", self.name)
        codes, uniques = group_codes(frame, column, self.name)
        group_rows = np.bincount(codes, minlength=len(uniques))
        order = np.random.default_rng(self.seed).permutation(len(uniques))
        group_split = _assign_groups(group_rows, order, self.shares, uniques, self.name, column)
        _check_nonempty(group_split[codes], self.shares, self.name, f"too few entities in '{column}'")
        return pd.Series(group_split[codes], index=frame.index, dtype=object)


@attrs.frozen(kw_only=True)
class StratifiedGroupSplit(_Declared):
    """Whole entities, with the label's class balance kept per split (sklearn ``StratifiedGroupKFold``).

    The test split is one fold of ``round(1 / test)`` folds, the validation split one fold of
    the rest, so the shares are met approximately.
    """

    name: ClassVar[str] = "stratified_group"
    stratify: str | None = None

    def assign(self, frame, *, context=None):
        import numpy as np
        import pandas as pd
        from sklearn.model_selection import StratifiedGroupKFold

        column = _require(frame, self.entity_column, "entity_column", self.name)
        strat_col = _require(frame, self.stratify or self.label, "stratify", self.name)
        codes, uniques = group_codes(frame, column, self.name)
        group_rows = np.bincount(codes, minlength=len(uniques))
        _assign_groups(group_rows, np.arange(len(uniques)), self.shares, uniques, self.name, column)  # size check
        y = frame[strat_col]
        if y.isna().any():
            raise DataError(
                f"{self.name} split: stratify column '{strat_col}' has null values; fill them or drop the rows"
            )
        counts = y.value_counts()
        if (counts < 2).any():
            raise DataError(
                f"{self.name} split: stratify column '{strat_col}' has class "
                f"{_py(counts[counts < 2].index[0])!r} with only "
                f"1 row; stratifying needs at least 2 rows per class"
            )
        y = pd.factorize(y)[0]
        labels = np.full(len(frame), "train", dtype=object)
        rest = np.arange(len(frame))
        for name, share, remaining in (("test", self.test, 1.0), ("validation", self.validation, 1.0 - self.test)):
            if share <= 0:
                continue
            folds = max(2, int(round(remaining / share)))
            try:
                splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=self.seed)
                _, held = next(splitter.split(rest, y[rest], codes[rest]))
            except ValueError as exc:
                raise DataError(f"{self.name} split: {exc}") from None
            labels[rest[held]] = name
            rest = np.delete(rest, held)
        _check_nonempty(labels, self.shares, self.name, f"too few entities in '{column}'")
        return pd.Series(labels, index=frame.index, dtype=object)


def _check_nonempty(labels, shares, strategy: str, why: str) -> None:
    import numpy as np

    for name in SPLITS:
        if shares[name] > 0 and not np.any(labels == name):
            raise DataError(f"{strategy} split: the {name} split would be empty ({why}); change the shares or add data")


@attrs.frozen(kw_only=True)
class TimeSplit(_Declared):
    """Train before validation before test by ``time_column``.

    Boundaries come from ``validation_start``/``test_start`` (ISO-8601) when given, else
    from the shares of the time-ordered rows. Rows within ``gap`` (a duration such as
    ``7d``) before a boundary are ``excluded``, an embargo between the splits.
    """

    name: ClassVar[str] = "time"
    validation_start: str | None = None
    test_start: str | None = None
    gap: str | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        _parse_gap(self.gap, self.name)  # reject a bad gap or cutoff when the chain is loaded
        for param in ("validation_start", "test_start"):
            if getattr(self, param):
                _parse_instant(getattr(self, param), param, self.name)

    def boundaries(self, times):
        import numpy as np

        if self.validation_start or self.test_start:
            if not (self.validation_start and self.test_start):
                raise ConfigError(f"{self.name} split: give both validation_start and test_start, or neither")
            b_val = _parse_instant(self.validation_start, "validation_start", self.name)
            b_test = _parse_instant(self.test_start, "test_start", self.name)
            if b_test < b_val:
                raise ConfigError(
                    f"{self.name} split: test_start {self.test_start} is before "
                    f"validation_start {self.validation_start}"
                )
            return b_val, b_test
        ordered = np.sort(times.dt.tz_localize(None).to_numpy())
        n = len(ordered)
        counts = _counts_from_shares(n, self.shares)
        import pandas as pd

        def at(k):
            if k >= n:
                return pd.Timestamp.max.tz_localize("UTC")
            return pd.Timestamp(ordered[k]).tz_localize("UTC")

        return at(counts["train"]), at(counts["train"] + counts["validation"])

    def _labels(self, times, b_val, b_test, gap):
        import numpy as np

        bv, bt = np.datetime64(b_val.tz_localize(None)), np.datetime64(b_test.tz_localize(None))
        g = np.timedelta64(gap.value, "ns")
        t = times.dt.tz_localize(None).to_numpy()
        labels = np.where(t >= bt, "test", np.where(t >= bv, "validation", "train")).astype(object)
        if gap.value:
            labels[(t >= bv - g) & (t < bv)] = "excluded"
            labels[(t >= bt - g) & (t < bt) & (t >= bv)] = "excluded"
        return labels

    def assign(self, frame, *, context=None):
        import pandas as pd

        column = _require(frame, self.time_column, "time_column", self.name)
        times = parse_times(frame[column], column, where=f"{self.name} split")
        b_val, b_test = self.boundaries(times)
        labels = self._labels(times, b_val, b_test, _parse_gap(self.gap, self.name))
        _check_nonempty(labels, self.shares, self.name, f"the boundaries leave no rows there (time column '{column}')")
        return pd.Series(labels, index=frame.index, dtype=object)


@attrs.frozen(kw_only=True)
class TimeGroupSplit(TimeSplit):
    """Time order and whole entities: each entity goes to the split in which its last row
    falls; its earlier rows before that split's start (minus ``gap``) are ``excluded``, so
    no held-out entity appears in training and no training row is later than validation."""

    name: ClassVar[str] = "time_group"

    def assign(self, frame, *, context=None):
        import numpy as np
        import pandas as pd

        column = _require(frame, self.time_column, "time_column", self.name)
        entity = _require(frame, self.entity_column, "entity_column", self.name)
        times = parse_times(frame[column], column, where=f"{self.name} split")
        codes, uniques = group_codes(frame, entity, self.name)
        b_val, b_test = self.boundaries(times)
        gap = _parse_gap(self.gap, self.name)
        row_labels = self._labels(times, b_val, b_test, gap)
        t = times.dt.tz_localize(None).to_numpy().astype("int64")
        order = np.lexsort((t, codes))  # by entity, then time
        ends = np.flatnonzero(np.r_[codes[order][1:] != codes[order][:-1], True])
        last_pos = np.empty(len(uniques), dtype=np.int64)
        last_pos[codes[order[ends]]] = order[ends]  # the row holding each entity's last time
        labels = row_labels[last_pos][codes].astype(object)
        # rows in another split than their entity's (earlier ones, or inside a gap) are excluded
        labels[labels != row_labels] = "excluded"
        group_rows = np.bincount(codes, minlength=len(uniques))
        largest = max(self.shares, key=self.shares.get)
        too_big = np.flatnonzero(group_rows > self.shares[largest] * len(frame))
        if len(too_big):
            g = too_big[0]
            raise DataError(
                f"{self.name} split: entity {_py(uniques[g])!r} of '{entity}' has {int(group_rows[g])} rows, more "
                f"than the largest split ({largest}) can hold; change the shares or the entity column"
            )
        _check_nonempty(labels, self.shares, self.name, f"no entity of '{entity}' ends there")
        return pd.Series(labels, index=frame.index, dtype=object)


def normalize_labels(values, *, where: str, column: str = ""):
    """Map split names in a column to ``train``/``validation``/``test``/``excluded``."""
    import numpy as np
    import pandas as pd

    aliases = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation", "test": "test", "testing": "test", "holdout": "test",
               "excluded": "excluded"}
    series = pd.Series(values)
    if series.isna().any():
        pos = int(series.isna().to_numpy().argmax())
        raise DataError(f"{where}: split column '{column}' is empty at row {pos}; every row needs a split")
    text = series.astype(str).str.strip().str.lower()
    mapped = text.map(aliases)
    if mapped.isna().any():
        bad = sorted(set(series[mapped.isna()].astype(str)))[:5]
        raise DataError(
            f"{where}: split column '{column}' has values {', '.join(map(repr, bad))}; "
            f"use train/validation/test (or valid, val, dev, holdout)"
        )
    return np.asarray(mapped.to_numpy(), dtype=object)


@attrs.frozen(kw_only=True)
class ColumnSplit(_Declared):
    """A split made elsewhere: ``split_column`` holds each row's split name."""

    name: ClassVar[str] = "column"
    split_column: str

    def assign(self, frame, *, context=None):
        import pandas as pd

        column = _require(frame, self.split_column, "split_column", self.name)
        return pd.Series(normalize_labels(frame[column], where=f"{self.name} split", column=column),
                         index=frame.index, dtype=object)


@attrs.frozen(kw_only=True)
class CustomSplit(_Declared):
    """A user function ``module:function(frame, seed)`` returning one split name per row."""

    name: ClassVar[str] = "custom"
    function: str

    def assign(self, frame, *, context=None):
        import importlib

        import pandas as pd

        module_name, _, func_name = self.function.partition(":")
        try:
            func = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"custom split: function '{self.function}' cannot be imported: {exc}") from None
        result = func(frame, seed=self.seed)
        if len(result) != len(frame):
            raise DataError(f"custom split: '{self.function}' returned {len(result)} labels for {len(frame)} rows")
        return pd.Series(normalize_labels(list(result), where="custom split", column=self.function),
                         index=frame.index, dtype=object)


# --- fingerprints ------------------------------------------------------------------------


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
    objects = values.astype("object").to_numpy()
    mask = pd.isna(objects)
    text = objects.astype(str).astype(object)
    text[mask] = None
    return hash_array(text, categorize=True)


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
    with np.errstate(over="ignore"):
        for name in columns:
            salt = pd.util.hash_array(np.array([name], dtype=object))[0]
            h = _column_hashes(frame[lookup[name]]) ^ salt
            acc = (acc * np.uint64(0x100000001B3)) ^ h
            acc ^= acc >> np.uint64(29)
    return acc


# --- the stage ---------------------------------------------------------------------------


def summarize_split(frame, labels, *, entity_column=None, time_column=None, label=None) -> dict[str, Any]:
    """Per-split facts shown by ``tether split show``: rows, time range, class balance, entities."""
    import numpy as np
    import pandas as pd

    labels = np.asarray(labels, dtype=object)
    present = [s for s in LABELS if np.any(labels == s)]
    out: dict[str, Any] = {"rows": {s: int(np.sum(labels == s)) for s in present}}
    if time_column and time_column in frame:
        times = parse_times(frame[time_column], time_column)
        out["time_range"] = {
            s: [times[labels == s].min().isoformat(), times[labels == s].max().isoformat()] for s in present
        }
    if label and label in frame:
        y = frame[label]
        if y.nunique(dropna=True) <= 50:
            balance = {}
            for s in present:
                counts = y[labels == s].value_counts(dropna=False)
                total = max(int(counts.sum()), 1)
                balance[s] = {str(k): round(int(v) / total, 6) for k, v in counts.sort_index().items()}
            out["class_balance"] = balance
        else:
            num = pd.to_numeric(y, errors="coerce")
            out["label_mean"] = {s: float(num[labels == s].mean()) for s in present}
    if entity_column and entity_column in frame:
        ent = frame[entity_column]
        out["entities"] = {s: int(ent[labels == s].nunique()) for s in present}
    return out


def _manifest_id(ref_digest: str, strategy: str, params: dict, policy: dict) -> str:
    payload = json.dumps({"a": ref_digest, "s": strategy, "p": params, "policy": policy}, sort_keys=True, default=str)
    return "split-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def make_split(frame, strategy, *, snapshot_id: str, context, where: str = "split"):
    """Assign, fingerprint, summarise and check ``frame``; returns (manifest, assignment frame).

    The manifest is not stored; its ``assignment`` object is.
    """
    import numpy as np
    import pandas as pd

    from tether.plugins.leakage import LeakageInput, load_catalog, run_checks

    labels = strategy.assign(frame, context=context)
    labels = np.asarray(labels, dtype=object)
    if len(labels) != len(frame):
        raise DataError(f"{where}: strategy '{strategy.name}' returned {len(labels)} labels for {len(frame)} rows")
    bad = set(pd.unique(labels)) - set(LABELS)
    if bad:
        raise DataError(
            f"{where}: strategy '{strategy.name}' returned split names {sorted(map(str, bad))}; "
            f"use {', '.join(LABELS)}"
        )
    entity_column = getattr(strategy, "entity_column", None)
    time_column = getattr(strategy, "time_column", None)
    label = getattr(strategy, "label", None)
    declared = {role: col for role, col in (("entity", entity_column), ("time", time_column), ("label", label)) if col}
    for role, column in declared.items():
        if column not in frame.columns:
            raise DataError(
                f"{where}: {role} column '{column}' is not in the data "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
    fingerprints = row_fingerprints(frame)
    features_from = getattr(strategy, "features_from", None)
    catalog = load_catalog(context.resolve_path(features_from)) if features_from else ()
    data = LeakageInput(frame=frame, splits=labels, fingerprints=fingerprints, entity_column=entity_column,
                        time_column=time_column, label=label, catalog=catalog,
                        ignore_columns=(*getattr(strategy, "ignore_columns", ()),
                                        *([strategy.split_column] if getattr(strategy, "split_column", None) else [])))
    policy = (context.policy or {}).get("leakage", {}) if context is not None else {}
    findings = run_checks(data, policy, host=context.host if context is not None else None, where="policy.leakage")
    summary = summarize_split(frame, labels, entity_column=entity_column, time_column=time_column, label=label)
    assignment = pd.DataFrame({"row": np.arange(len(frame), dtype=np.int64),
                               "row_fingerprint": fingerprints, "split": labels.astype(str)})
    ref = context.workspace.put_frame(assignment)
    params = json.loads(json.dumps(attrs.asdict(strategy), default=str))  # as the store gives it back
    manifest = SplitManifest(
        id=_manifest_id(ref.digest, strategy.name, params, policy), snapshot_id=snapshot_id, strategy=strategy.name,
        params=params, sizes={s: int(np.sum(labels == s)) for s in LABELS if s in SPLITS or np.any(labels == s)},
        assignment=ref, seed=getattr(strategy, "seed", None), findings=tuple(findings), summary=summary,
        fingerprint_method=FINGERPRINT_METHOD, columns=declared,
        label_definition=getattr(strategy, "label_definition", "") or "",
        policy=policy,
    )
    return manifest, assignment


@hookimpl(trylast=True)
def tether_split(snapshot, stage, context):
    from tether.plugins.leakage import LeakageFailed

    strategy = context.backend(stage)
    frame = context.workspace.read_snapshot(snapshot)
    manifest, _ = make_split(frame, strategy, snapshot_id=snapshot.id, context=context, where=stage.where)
    html = getattr(strategy, "html", None)
    if html:
        write_html(manifest, context.resolve_path(html))
    failing = [f for f in manifest.findings if f.severity == "error"]
    if failing:
        # Keep the evidence: the manifest is stored before the stage fails, so
        # `tether split show ID` explains what failed; the run records the error.
        context.store.put(manifest, parents=[(snapshot.id, "snapshot")],
                          run_id=context.run.id if context.run else None)
        raise LeakageFailed.from_findings(manifest.id, failing)
    return manifest


def write_html(manifest, path) -> None:
    """Write the HTML report of a manifest: per-split summary and leakage findings."""
    from pathlib import Path

    from tether.plugins.leakage import findings_html

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"Split {manifest.id} ({manifest.strategy}) of {manifest.snapshot_id}"
    path.write_text(findings_html(manifest.findings, title=title, summary=manifest.summary), encoding="utf-8")


def load_assignment(workspace, manifest):
    """The stored assignment (``row``, ``row_fingerprint``, ``split``) of a manifest."""
    return workspace.read_frame(manifest.assignment)


def rows_of(frame, workspace, manifest, split: str):
    """The rows of ``frame`` in ``split``, matched by row fingerprint (order-independent)."""
    import numpy as np

    assignment = load_assignment(workspace, manifest)
    wanted = assignment.loc[assignment["split"] == split, "row_fingerprint"].to_numpy(dtype=np.uint64)
    return frame[np.isin(row_fingerprints(frame), wanted)]


# --- CLI ---------------------------------------------------------------------------------


@hookimpl
def tether_add_commands(cli):
    import click

    from tether.cli import emit, json_option, open_workspace, workspace_option

    @cli.group()
    def split():
        """Inspect split manifests."""

    @split.command("ls")
    @workspace_option
    @click.option("--limit", default=20, show_default=True)
    @json_option
    @click.pass_context
    def split_ls(ctx, workspace, limit, json_output):
        """List split manifests, newest first."""
        ws = open_workspace(ctx, workspace)
        found = ws.store.find("split", limit=limit)

        def human():
            if not found:
                click.echo(f"no splits in {ws.root}")
            for m in found:
                errors = sum(f.severity == "error" for f in m.findings)
                order = sorted(m.sizes, key=lambda k: LABELS.index(k) if k in LABELS else 9)
                sizes = ", ".join(f"{k} {m.sizes[k]:,}" for k in order)
                click.echo(f"{m.id}  {m.strategy:<16} {sizes}  {len(m.findings)} findings ({errors} failing)")

        emit(ctx, found, human)

    @split.command("show")
    @click.argument("split_id")
    @workspace_option
    @json_option
    @click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report here.")
    @click.pass_context
    def split_show(ctx, split_id, workspace, json_output, html_path):
        """Explain a split: sizes, time range, class balance and entities per split, findings."""
        from tether.errors import NotFoundError
        from tether.plugins.leakage import format_findings

        ws = open_workspace(ctx, workspace)
        manifest = ws.store.get(split_id, kind="split")
        if manifest is None:
            matches = ws.store.find("split", prefix=split_id, limit=2)
            if len(matches) == 1:
                manifest = matches[0]
            else:
                raise NotFoundError(f"no split '{split_id}' in {ws.root} (split ids look like split-0123abcd...)")
        if html_path:
            write_html(manifest, html_path)

        def human():
            click.echo(f"split {manifest.id} of snapshot {manifest.snapshot_id}")
            params = {k: v for k, v in manifest.params.items()
                      if v not in (None, "", (), []) and k != "label_definition"}
            click.echo(f"  strategy {manifest.strategy}: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
            if manifest.label_definition:
                click.echo(f"  label definition: {manifest.label_definition}")
            s = manifest.summary
            rows_by_split = s.get("rows", manifest.sizes)
            for name in sorted(rows_by_split, key=lambda k: LABELS.index(k) if k in LABELS else 9):
                rows = rows_by_split[name]
                parts = [f"{rows:,} rows"]
                if "time_range" in s:
                    lo, hi = s["time_range"][name]
                    parts.append(f"{lo} .. {hi}")
                if "entities" in s:
                    parts.append(f"{s['entities'][name]:,} entities")
                if "class_balance" in s:
                    parts.append("classes " + ", ".join(f"{k}: {v:.1%}" for k, v in s["class_balance"][name].items()))
                if "label_mean" in s:
                    parts.append(f"label mean {s['label_mean'][name]:.4g}")
                click.echo(f"  {name:<10} " + "; ".join(parts))
            click.echo(format_findings(manifest.findings))

        emit(ctx, manifest, human)


@hookimpl
def tether_add_backends(backends):
    for cls in (RandomSplit, StratifiedSplit, GroupSplit, StratifiedGroupSplit, TimeSplit, TimeGroupSplit,
                ColumnSplit, CustomSplit):
        backends.add(cls)
