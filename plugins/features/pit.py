"""Point-in-time correct joins: what was known about each entity at each prediction time.

:func:`point_in_time_join` attaches to every row of an entity table (entity key,
prediction timestamp, usually a label) the latest feature values that were *available*
at that row's prediction time. With one entity key column and no ``available_at``, it
sorts the feature rows' (entity, timestamp) once and finds each entity row's match by a
binary search (:mod:`.pit_sorted`); otherwise (several key columns, ``available_at``,
or keys and times too wide to encode in 63 bits) it runs one DuckDB ``ASOF LEFT JOIN``
per group of features sharing a lag and a TTL. Either way only keys, timestamps and row
numbers are sorted; values are gathered afterwards, and only the columns used are
converted to Arrow.

The rules, for one entity row ``(k, p)`` and one feature:

* a feature row ``(k, t, value)`` becomes available at ``a = t + lag`` (and, when the
  table has an ``available_at`` column, at the later of that and ``t + lag``);
* the row used is the one with the greatest ``a`` such that ``a <= p`` (equality counts:
  a value available exactly at prediction time is used);
* with a ``ttl``, that value counts as missing when ``p - t > ttl`` (its age at prediction
  time, measured from the feature timestamp, exceeds the TTL); tether does not fall back
  to an older value, which would be older still;
* the latest row wins even when its value is null: a null is a known missing value;
* entities with no available row (unknown entities, null entity keys, rows before the
  entity's first value) get nulls.

Ties and bad input:

* two feature rows with the same entity and feature timestamp are ambiguous when the join
  uses one of them, and raise :class:`~tether.errors.DataError` (``duplicates="error"``, the
  default; duplicates no entity row can reach change nothing and pass);
  ``duplicates="last"`` keeps the one that comes last in the input instead;
* with ``available_at``, rows of one entity that become available at the same instant
  are resolved in favour of the greatest feature timestamp;
* several entity rows with the same key and prediction time each get the same values;
  the output keeps the entity table's rows, in its order, with its columns unchanged;
* null prediction or feature timestamps, and null entity keys in a feature table, raise
  :class:`~tether.errors.DataError` naming the column;
* timestamps are compared as instants at nanosecond precision: time zones may differ
  between tables (both are read as UTC instants), but mixing a zone-aware column with a
  naive one raises, because the naive one's zone is unknown.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from tether.errors import ConfigError, DataError
from tether.sql import quote_identifier

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

ROW = "__tether_row"
_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def to_timedelta(value: Any, *, what: str = "lag") -> dt.timedelta | None:
    """``"2d"``, ``"90min"``, a ``timedelta`` or ``None`` as a ``pandas.Timedelta`` (or ``None``)."""
    import pandas as pd

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        with warnings.catch_warnings():  # pandas 3 deprecates the lower-case "d" catalogues use
            warnings.simplefilter("ignore")
            delta = pd.Timedelta(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} {value!r} is not a duration such as '2d', '6h' or '90min': {exc}") from None
    if pd.isna(delta):
        raise ConfigError(f"{what} {value!r} is not a duration such as '2d', '6h' or '90min'")
    if delta < pd.Timedelta(0):
        raise ConfigError(f"{what} {value!r} is negative; a value cannot be known before its timestamp")
    return delta


def _ns(delta) -> int | None:
    return None if delta is None else int(delta.value)


@attrs.frozen(kw_only=True)
class FeatureTable:
    """One feature table to join: its frame, timestamp column, and availability rules.

    ``lag`` and ``ttl`` are durations (``"2d"``) or mappings of feature column to
    duration; ``columns`` defaults to every column that is not a key or timestamp.
    """

    frame: Any
    feature_time: str = "feature_timestamp"
    columns: tuple[str, ...] | None = None
    lag: Any = None
    ttl: Any = None
    available_at: str | None = None
    prefix: str = ""


class _Columns:
    """A DataFrame or Arrow table, converted to Arrow one column at a time, when needed.

    Only the key, timestamp and feature columns a join uses are converted; float columns
    of a DataFrame are gathered straight from numpy.
    """

    def __init__(self, frame: Any, what: str):
        import pandas as pd
        import pyarrow as pa

        if isinstance(frame, pa.RecordBatch):
            frame = pa.Table.from_batches([frame])
        if not isinstance(frame, (pa.Table, pd.DataFrame)):
            raise DataError(f"{what} must be a pandas DataFrame or a pyarrow Table, got {type(frame).__name__}")
        self.frame, self.what, self._cache = frame, what, {}
        self.is_pandas = isinstance(frame, pd.DataFrame)
        self.column_names = [str(c) for c in frame.columns] if self.is_pandas else frame.column_names
        self.num_rows = len(frame) if self.is_pandas else frame.num_rows

    def column(self, name: str) -> pa.ChunkedArray:
        import pyarrow as pa

        if not self.is_pandas:
            return self.frame.column(name)
        if name not in self._cache:
            try:
                self._cache[name] = pa.chunked_array([pa.array(self.frame[name], from_pandas=True)])
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise DataError(f"{self.what} column '{name}' cannot be converted to Arrow: {exc}") from None
        return self._cache[name]

    def floats(self, name: str):
        """The column as a numpy float array when it is one already (NaN: missing), else ``None``."""
        import numpy as np

        if self.is_pandas:
            values = self.frame[name]
            if isinstance(values.dtype, np.dtype) and values.dtype.kind == "f":
                return values.to_numpy()
        return None


def _epoch_ns(column: pa.ChunkedArray, name: str, what: str) -> tuple[pa.ChunkedArray, str | None]:
    """A timestamp column as int64 nanoseconds since the epoch (UTC), and its zone."""
    import pyarrow as pa
    import pyarrow.compute as pc

    typ = column.type
    if pa.types.is_date(typ):
        column = column.cast(pa.timestamp("s"))
        typ = column.type
    if not pa.types.is_timestamp(typ):
        raise DataError(f"{what} column '{name}' must hold timestamps, got {typ}; parse it with pandas.to_datetime")
    ints = column.cast(pa.int64())  # Arrow stores zone-aware timestamps as UTC epoch values
    factor = _NS[typ.unit]
    if factor != 1:
        ints = pc.multiply_checked(ints, pa.scalar(factor, pa.int64()))
    return ints, typ.tz


def _check_columns(table: _Columns, names: Iterable[str], what: str) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise DataError(f"{what} has no column {', '.join(repr(m) for m in missing)} "
                        f"(columns: {', '.join(table.column_names)})")


def _groups(columns: Sequence[str], lag: Any, ttl: Any, what: str) -> dict[tuple, list[str]]:
    """Feature columns grouped by (lag ns, ttl ns): one ASOF join per group."""
    def per_column(rule, label):
        if isinstance(rule, Mapping):
            unknown = [c for c in rule if c not in columns]
            if unknown:
                raise ConfigError(f"{what}: {label} names unknown feature column {unknown[0]!r}")
            return {c: _ns(to_timedelta(rule.get(c), what=f"{label} of '{c}'")) for c in columns}
        value = _ns(to_timedelta(rule, what=label))
        return {c: value for c in columns}

    lags, ttls = per_column(lag, "lag"), per_column(ttl, "ttl")
    groups: dict[tuple, list[str]] = {}
    for c in columns:
        groups.setdefault((lags[c] or 0, ttls[c]), []).append(c)
    return groups


def point_in_time_join(
    entities: Any,
    features: Any,
    *,
    entity: str | Sequence[str],
    prediction_time: str,
    feature_time: str = "feature_timestamp",
    lag: Any = None,
    ttl: Any = None,
    columns: Sequence[str] | None = None,
    available_at: str | None = None,
    duplicates: str = "error",
    threads: int | None = None,
) -> pd.DataFrame:
    """Join each entity row with the feature values available at its prediction time.

    :param entities: DataFrame or Arrow table with the entity key(s) and ``prediction_time``.
    :param features: a DataFrame/Arrow table, or a list of :class:`FeatureTable`.
    :param entity: the entity key column (or columns), named the same in every table.
    :param prediction_time: the entity table's timestamp column.
    :param feature_time: the feature table's timestamp column (single-table form).
    :param lag: availability lag, a duration or ``{column: duration}`` (single-table form).
    :param ttl: time-to-live after which a value counts as missing (single-table form).
    :param columns: the feature columns to attach (default: all but keys and timestamps).
    :param available_at: optional column of the instant each row actually became known.
    :param duplicates: ``"error"`` or ``"last"`` for rows sharing entity and timestamp.
    :returns: a pandas DataFrame: the entity table's columns and rows, plus the features.

    See the module docstring for the exact rules (lag, TTL, ties, time zones).
    """

    if duplicates not in ("error", "last"):
        raise ConfigError(f"duplicates: expected 'error' or 'last', got {duplicates!r}")
    keys = [entity] if isinstance(entity, str) else list(entity)
    if not keys:
        raise ConfigError("entity: name at least one entity key column")
    tables = _feature_tables(features, FeatureTable(frame=features, feature_time=feature_time, lag=lag, ttl=ttl,
                                                    columns=tuple(columns) if columns is not None else None,
                                                    available_at=available_at))
    left = _Columns(entities, "entity table")
    _check_columns(left, [*keys, prediction_time], "entity table")
    probe = _Probe(left, keys, prediction_time, threads)
    try:
        columns_out: dict[str, Any] = {}
        for ti, spec in enumerate(tables):
            what = f"feature table {ti}" if len(tables) > 1 else "feature table"
            columns_out.update(_join_table(probe, ti, spec, what, duplicates=duplicates,
                                           taken={*columns_out, *left.column_names}))
    finally:
        probe.close()
    if not columns_out:
        raise DataError("no feature columns to join; the feature table has only key and timestamp columns")
    return _attach(left, columns_out)


def _feature_tables(features: Any, single: FeatureTable) -> list[FeatureTable]:
    """The feature tables to join: a list of :class:`FeatureTable`, or ``single``."""
    if isinstance(features, FeatureTable):
        return [features]
    if isinstance(features, (list, tuple)):
        if not all(isinstance(t, FeatureTable) for t in features):
            raise ConfigError("features: a list must hold FeatureTable(...) items")
        return list(features)
    return [single]


class _Probe:
    """The entity rows' keys and prediction times; a DuckDB connection only if a join needs one."""

    def __init__(self, left: _Columns, keys: list[str], prediction_time: str, threads: int | None):
        self.pred_ns, self.tz = _epoch_ns(left.column(prediction_time), prediction_time, "entity table")
        if self.pred_ns.null_count:
            raise DataError(f"entity table column '{prediction_time}' has {self.pred_ns.null_count} null "
                            "prediction timestamps; drop or fill those rows before joining")
        self.left, self.keys, self.prediction_time, self.threads = left, keys, prediction_time, threads
        self.n = left.num_rows
        self.p_range = _min_max(self.pred_ns) if self.n else (None, None)
        self._con = self._times = None

    def times(self):
        """The prediction times as int64 epoch nanoseconds in a numpy array."""

        if self._times is None:
            self._times = _int64s(self.pred_ns)
        return self._times

    def connection(self):
        """A DuckDB connection with the probe table (keys, ``__p``, row number) registered."""
        import duckdb
        import numpy as np
        import pyarrow as pa

        if self._con is None:
            self._con = duckdb.connect()
            self._con.execute("SET preserve_insertion_order = false")  # rows are put back in order by row number
            if self.threads:
                self._con.execute(f"SET threads = {int(self.threads)}")
            self._con.register("probe", pa.table({**{k: self.left.column(k) for k in self.keys},
                                                  "__p": self.pred_ns,
                                                  ROW: pa.array(np.arange(self.n, dtype=np.int64))}))
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def _family(typ) -> str:
    import pyarrow as pa

    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "number"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_dictionary(typ):
        return "text"
    return str(typ)


def _int64s(column):
    import numpy as np

    return np.asarray(column.to_numpy(), dtype=np.int64) if len(column) else np.empty(0, dtype=np.int64)


def _min_max(column) -> tuple[int, int]:
    import pyarrow.compute as pc

    found = pc.min_max(column)
    return found["min"].as_py(), found["max"].as_py()


def _join_table(probe: _Probe, ti: int, spec: FeatureTable, what: str, *, duplicates: str,
                taken: set[str]) -> dict[str, Any]:
    """Join one feature table: output name -> column aligned with the entity rows."""
    from .pit_sorted import sorted_join

    keys, prediction_time = probe.keys, probe.prediction_time
    right = _Columns(spec.frame, what)
    cols = _feature_columns(right, spec, keys, what, taken)
    ft_ns, ft_tz = _epoch_ns(right.column(spec.feature_time), spec.feature_time, what)
    if (ft_tz is None) != (probe.tz is None):
        aware, naive = (prediction_time, spec.feature_time) if probe.tz else (spec.feature_time, prediction_time)
        raise DataError(f"'{aware}' is zone-aware but '{naive}' is naive; localize '{naive}' "
                        "(e.g. tz_localize('UTC')) so the instants can be compared")
    if ft_ns.null_count:
        raise DataError(f"{what} column '{spec.feature_time}' has {ft_ns.null_count} null feature timestamps; "
                        "a value without a timestamp cannot be placed in time: drop or fill them")
    _check_keys(right, keys, {k: probe.left.column(k).type for k in keys}, what)
    groups = _groups(cols, spec.lag, spec.ttl, what)

    def describe(row: int, count: int) -> str:
        example = ", ".join(f"{k}={right.column(k)[row].as_py()!r}" for k in keys)
        return (f"{what} has {count} rows repeating the ({', '.join(keys)}, {spec.feature_time}) of a row the "
                f"join uses (e.g. {example}), so the value at that time is ambiguous; deduplicate it or "
                "pass duplicates='last'")

    found = None
    if len(keys) == 1 and not spec.available_at:
        found = sorted_join(probe.left.column(keys[0]), probe.times(), right.column(keys[0]),
                            _int64s(ft_ns), groups,
                            duplicates=duplicates, describe=describe)
    if found is None:
        found = _duckdb_join(probe, ti, right, spec, ft_ns, ft_tz, groups, what, duplicates=duplicates,
                             describe=describe)
    return {f"{spec.prefix}{c}": _gather(right, c, rows, missing) for group, rows, missing in found for c in group}


def _duckdb_join(probe: _Probe, ti: int, right: _Columns, spec: FeatureTable, ft_ns, ft_tz, groups, what: str, *,
                 duplicates: str, describe) -> list[tuple[list[str], Any, Any]]:
    """The join by DuckDB's ASOF join (several keys, ``available_at``): (columns, rows, missing) per group."""
    keys, con = probe.keys, probe.connection()
    name = f"feat{ti}"
    build = _build_side(right, spec, keys, ft_ns, ft_tz, what)
    con.register(name, build)
    key_list = ", ".join(quote_identifier(k) for k in keys)
    source = name if duplicates == "error" else (
        f"(SELECT * FROM {name} QUALIFY row_number() OVER (PARTITION BY {key_list}, __t ORDER BY __i DESC) = 1)")
    indexes = []
    for (lag_ns, ttl_ns), group in groups.items():
        query = _asof_query(source, keys, lag_ns=lag_ns, ttl_ns=ttl_ns, p_range=probe.p_range,
                            available_at=bool(spec.available_at))
        indexes.append((group, _matched_rows(con, query, probe.n, what)))
    if duplicates == "error" and indexes:
        _check_used_rows_unique(con, name, build, [index for _, index in indexes], keys, describe)
    return [(group, index.fill_null(0).to_numpy(), index.is_null().to_numpy(zero_copy_only=False))
            for group, index in indexes]


def _feature_columns(right: _Columns, spec: FeatureTable, keys: list[str], what: str, taken: set[str]) -> list[str]:
    """The feature columns of one table, checked to exist and not to clash with others."""
    _check_columns(right, [*keys, spec.feature_time] + ([spec.available_at] if spec.available_at else []), what)
    skip = {*keys, spec.feature_time, spec.available_at}
    cols = list(spec.columns) if spec.columns is not None else [c for c in right.column_names if c not in skip]
    _check_columns(right, cols, what)
    for c in cols:
        if f"{spec.prefix}{c}" in taken:
            raise DataError(f"feature column '{spec.prefix}{c}' is already in the entity table or another feature "
                            "table; rename it or give the FeatureTable a prefix")
    return cols


def _check_keys(right: _Columns, keys: list[str], left_types: dict[str, Any], what: str) -> None:
    """Key columns must be comparable with the entity table's and hold no nulls."""
    import pyarrow as pa

    for k in keys:
        lt, rt = left_types[k], right.column(k).type
        if lt != rt and pa.null() not in (lt, rt) and _family(lt) != _family(rt):
            raise DataError(f"key column '{k}' is {lt} in the entity table but {rt} in the {what}; "
                            "cast one so the keys can match")
        if right.column(k).null_count:
            raise DataError(f"{what} key column '{k}' has {right.column(k).null_count} nulls; "
                            "drop those rows, they cannot be matched to an entity")


def _build_side(right: _Columns, spec: FeatureTable, keys: list[str], ft_ns, ft_tz: str | None, what: str) -> pa.Table:
    """The narrow table the join sorts: keys, ``__t`` (ns), ``__i`` (row number), ``__av``.

    Only keys, timestamps and a row number go through DuckDB; values are gathered by row
    number afterwards, so the ASOF join sorts narrow rows whatever the feature types.
    """
    import numpy as np
    import pyarrow as pa

    data = {k: right.column(k) for k in keys}
    data["__t"] = ft_ns
    data["__i"] = pa.array(np.arange(right.num_rows, dtype=np.int64))
    if spec.available_at:
        av_ns, av_tz = _epoch_ns(right.column(spec.available_at), spec.available_at, what)
        if (av_tz is None) != (ft_tz is None):
            raise DataError(f"'{spec.available_at}' and '{spec.feature_time}' must both be zone-aware or both naive")
        data["__av"] = av_ns
    return pa.table(data)


def _asof_query(source: str, keys: list[str], *, lag_ns: int, ttl_ns: int | None, p_range: tuple[int, int],
                available_at: bool) -> str:
    """The ASOF LEFT JOIN of the probe with one group of features sharing a lag and TTL."""
    key_list = ", ".join(quote_identifier(k) for k in keys)
    key_eq = " AND ".join(f"probe.{quote_identifier(k)} = j.{quote_identifier(k)}" for k in keys)
    avail = f"__t + {lag_ns}" if lag_ns else "__t"
    if available_at:
        avail = f"greatest({avail}, coalesce(__av, {avail}))"
    # Prune rows no entity row can use: available after the last prediction time or, with
    # a TTL and a fixed lag, older than the TTL before the first one (they would be expired).
    where = [] if p_range[1] is None else [f"{avail} <= {p_range[1]}"]
    if ttl_ns is not None and not available_at and p_range[0] is not None:
        where.append(f"__t >= {p_range[0] - ttl_ns}")
    if available_at:
        inner = f"SELECT {key_list}, __t, __i, {avail} AS __a FROM {source}"
        inner += f" WHERE {' AND '.join(where)}" if where else ""
        inner = (f"SELECT * FROM ({inner}) "
                 f"QUALIFY row_number() OVER (PARTITION BY {key_list}, __a ORDER BY __t DESC) = 1")
        condition = "probe.__p >= j.__a"
    else:  # a fixed lag moves the prediction time back instead: the build side stays as stored
        inner = f"SELECT {key_list}, __t, __i FROM {source}"
        inner += f" WHERE {' AND '.join(where)}" if where else ""
        condition = f"probe.__p - {lag_ns} >= j.__t" if lag_ns else "probe.__p >= j.__t"
    matched = "j.__i" if ttl_ns is None else f"CASE WHEN probe.__p - j.__t <= {ttl_ns} THEN j.__i END"
    return (f"SELECT probe.{ROW} AS r, {matched} AS i FROM probe "
            f"ASOF LEFT JOIN ({inner}) j ON {key_eq} AND {condition}")


def _matched_rows(con, query: str, n: int, what: str):
    """Run one ASOF query: the matched feature row number (or null) per entity row, in order."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    try:
        result = con.sql(query).to_arrow_table()
    except duckdb.Error as exc:
        raise DataError(f"{what}: the point-in-time join failed: {str(exc).splitlines()[0]}") from None
    order = np.empty(n, dtype=np.int64)
    order[result.column("r").to_numpy()] = np.arange(n, dtype=np.int64)
    return result.column("i").combine_chunks().take(pa.array(order))


def _check_used_rows_unique(con, name: str, build, indexes, keys: list[str], describe) -> None:
    """Raise if a row the join used shares its (entity, timestamp) with another row.

    Only those duplicates make the result ambiguous; checking the used rows against the
    table is a hash join probed by every row, cheaper than counting every distinct pair.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    used = pc.unique(pa.chunked_array([i.drop_null() for i in indexes], type=pa.int64()).combine_chunks())
    if not len(used):
        return
    rows = pa.table({**{k: build.column(k).take(used) for k in keys}, "__t": build.column("__t").take(used),
                     "__i": used})
    con.register(f"{name}_used", rows)
    on = " AND ".join([f"f.{quote_identifier(k)} = u.{quote_identifier(k)}" for k in keys] + ["f.__t = u.__t"])
    found = con.execute(f"SELECT count(*), any_value(u.__i) FROM {name} f JOIN {name}_used u ON {on} "
                        "WHERE f.__i <> u.__i").fetchall()[0]
    if found[0]:
        raise DataError(describe(found[1], found[0]))


def _gather(right: _Columns, name: str, rows, missing):
    """The values of column ``name`` at ``rows`` (missing where ``missing``); float columns go
    through numpy (NaN for missing), several times faster for random gathers, same pandas result."""
    import numpy as np
    import pyarrow as pa

    values = right.floats(name)
    if values is None:
        column = right.column(name)
        if not pa.types.is_floating(column.type):
            return column.take(pa.array(rows, mask=missing))
        values = column.to_numpy()  # nulls become NaN
    out = values[rows] if len(values) else np.full(len(rows), np.nan, dtype=values.dtype)
    out[missing] = np.nan
    return out


def _attach(left: _Columns, columns: dict[str, Any]) -> pd.DataFrame:
    """The entity rows (unchanged) with the joined feature columns appended."""
    import numpy as np
    import pandas as pd

    base = left.frame.copy(deep=False).reset_index(drop=True) if left.is_pandas else left.frame.to_pandas()
    extra = pd.DataFrame({name: column if isinstance(column, np.ndarray) else column.to_pandas()
                          for name, column in columns.items()}, index=base.index)
    return pd.concat([base, extra], axis=1)
