"""Data profiles: one mergeable sketch per column, built from Arrow record batches.

:class:`ProfileBuilder` turns record batches into a :class:`DataProfile`: one sketch per
column (see :mod:`.sketches`), row count, schema, time range and a uniform row sample
(bottom-k of a hash of each row's global row number, see :mod:`.samples`: the same however
the rows are cut into chunks or partitions, and mergeable). Memory is bounded by the chunk
size plus the sketches, whatever the number of rows. :func:`profile_windows` builds one
profile per daily/weekly window in the same single pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import attrs
from tether.errors import DataError

from .sketches import (
    CATEGORICAL,
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_SKETCH_SIZE,
    NUMERIC,
    CategoricalSketch,
    NumericSketch,
)


def column_kind(arrow_type) -> str:
    """``numeric`` for integers, floats, decimals, dates and timestamps; else ``categorical``."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):
        return CATEGORICAL
    if pa.types.is_boolean(t):
        return CATEGORICAL
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_temporal(t):
        return NUMERIC
    return CATEGORICAL


def to_float(array):
    """A pyarrow array as float64 numpy (nulls -> NaN; temporal values -> epoch seconds)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    if pa.types.is_temporal(t):
        if pa.types.is_date(t):
            array = array.cast(pa.timestamp("s"))
            t = array.type
        scale = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[getattr(t, "unit", "s")]
        ints = pc.cast(array, pa.int64())
        return pc.cast(ints, pa.float64()).to_numpy(zero_copy_only=False) / scale
    if not pa.types.is_float64(t):
        array = pc.cast(array, pa.float64())
    return array.to_numpy(zero_copy_only=False)


@attrs.define
class DataProfile:
    """Sketches of every column of a window (or of the reference)."""

    columns: dict[str, Any]  # name -> NumericSketch | CategoricalSketch
    types: dict[str, str]  # name -> Arrow type string
    rows: int = 0
    time_column: str | None = None
    time_min: dt.datetime | None = None
    time_max: dt.datetime | None = None
    sample: Any = None  # pyarrow.Table of at most sample_rows rows, in row order, or None
    label: str = ""
    schema: tuple[str, ...] = ()  # every column the data had, profiled or not
    #: the :class:`~.samples.RowSample` behind ``sample`` (its rows' keys and row numbers),
    #: which :func:`merge_profiles` merges; None for a profile read from the store (only
    #: the rows are stored) or built without a sample
    row_sample: Any = None


@attrs.define
class ProfileBuilder:
    """Accumulates record batches into a :class:`DataProfile`; call :meth:`add` per chunk."""

    time_column: str | None = None
    exclude: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # empty: every column
    sketch_size: int = DEFAULT_SKETCH_SIZE
    max_categories: int = DEFAULT_MAX_CATEGORIES
    sample_rows: int = 5_000
    seed: int = 0
    row_offset: int = 0  # global row number of the first row added (a partition's place in the data)
    workers: int = 1  # threads updating column sketches (numpy and Arrow release the GIL)
    _pool: Any = attrs.field(default=None, init=False)
    _sketches: dict[str, Any] = attrs.field(factory=dict, init=False)
    _types: dict[str, str] = attrs.field(factory=dict, init=False)
    _schema: dict[str, None] = attrs.field(factory=dict, init=False)
    _rows: int = attrs.field(default=0, init=False)
    _tmin: Any = attrs.field(default=None, init=False)
    _tmax: Any = attrs.field(default=None, init=False)
    _sample: Any = attrs.field(default=None, init=False)

    def wanted(self, schema) -> list[str]:
        names = list(self.columns) if self.columns else list(schema.names)
        return [n for n in names if n in schema.names and n not in self.exclude and n != self.time_column]

    def add(self, batch, rows=None) -> None:
        """Add a record batch or table. ``rows``: the global row numbers of its rows (for the
        sample); by default they follow the rows added so far, from ``row_offset``."""
        import pyarrow as pa

        if isinstance(batch, pa.Table):
            start = 0
            for b in batch.to_batches():
                self.add(b, None if rows is None else rows[start:start + b.num_rows])
                start += b.num_rows
            if batch.num_rows == 0:
                self._note_schema(batch.schema)
            return
        self._note_schema(batch.schema)
        if batch.num_rows == 0:
            return
        if rows is None and self.sample_rows:
            import numpy as np

            first = self.row_offset + self._rows
            rows = np.arange(first, first + batch.num_rows, dtype=np.int64)
        self._rows += batch.num_rows
        self._update_sketches(batch)
        self._update_time_range(batch)
        if self.sample_rows:
            if self._sample is None:
                from .samples import RowSample

                self._sample = RowSample(size=self.sample_rows, seed=self.seed)
            self._sample.add(batch, rows)

    def _update_sketches(self, batch) -> None:
        def update(name: str) -> None:
            array = batch.column(batch.schema.get_field_index(name))
            sketch = self._sketches[name]
            if isinstance(sketch, NumericSketch):
                sketch.add(to_float(array))
            else:
                sketch.add_arrow(array)

        names = self.wanted(batch.schema)
        if self.workers > 1 and len(names) > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers)
            list(self._pool.map(update, names))
        else:
            for name in names:
                update(name)

    def _update_time_range(self, batch) -> None:
        import pyarrow.compute as pc

        if not self.time_column or self.time_column not in batch.schema.names:
            return
        mm = pc.min_max(batch.column(batch.schema.get_field_index(self.time_column)))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        if lo is not None:
            self._tmin = lo if self._tmin is None else min(self._tmin, lo)
            self._tmax = hi if self._tmax is None else max(self._tmax, hi)

    def _note_schema(self, schema) -> None:
        self._schema.update(dict.fromkeys(schema.names))
        for name in self.wanted(schema):
            if name in self._sketches:
                continue
            field = schema.field(name)
            self._types[name] = str(field.type)
            if column_kind(field.type) == NUMERIC:
                self._sketches[name] = NumericSketch(sketch_size=self.sketch_size)
            else:
                self._sketches[name] = CategoricalSketch(max_categories=self.max_categories)

    def finish(self, label: str = "") -> DataProfile:
        numeric = [s for s in self._sketches.values() if isinstance(s, NumericSketch)]
        list((self._pool.map if self._pool is not None else map)(NumericSketch.flush, numeric))  # buffered values
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return DataProfile(columns=self._sketches, types=self._types, rows=self._rows, time_column=self.time_column,
                           time_min=_as_utc(self._tmin), time_max=_as_utc(self._tmax), label=label,
                           schema=tuple(self._schema), sample=self._sample.table if self._sample is not None else None,
                           row_sample=self._sample)


def _as_utc(value):
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    return None


def time_range(batches, time_column: str, start: dt.datetime | None, end: dt.datetime | None) -> Iterator:
    """Only the rows with ``start <= time < end`` (either bound may be ``None``), batch by batch."""
    import numpy as np
    import pyarrow as pa

    lo = _as_utc(start).timestamp() if start else -np.inf
    hi = _as_utc(end).timestamp() if end else np.inf
    for batch in batches:
        if time_column not in batch.schema.names:
            raise DataError(f"time column '{time_column}' is not in the data "
                            f"(columns: {', '.join(batch.schema.names)})")
        t = to_float(batch.column(batch.schema.get_field_index(time_column)))
        yield batch.filter(pa.array((t >= lo) & (t < hi)))


def profile_batches(batches, **kwargs) -> DataProfile:
    builder = ProfileBuilder(**kwargs)
    for batch in batches:
        builder.add(batch)
    return builder.finish()


def window_key(times, every: str):
    """Window start per row: ``daily`` or ``weekly`` (weeks start on Monday), as a pyarrow array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_date(times.type):
        times = times.cast(pa.timestamp("s"))
    if every == "daily":
        return pc.floor_temporal(times, unit="day")
    if every == "weekly":
        return pc.floor_temporal(times, unit="week", week_starts_monday=True)
    raise DataError(f"window '{every}' is not supported; use daily or weekly")


def profile_windows(batches, *, every: str, time_column: str, **kwargs) -> list[DataProfile]:
    """One profile per daily/weekly window of ``time_column``, oldest first, built chunk by chunk.
    Each row keeps its row number in ``batches``, so the windows' samples merge into the
    sample of the whole data."""
    import numpy as np
    import pyarrow.compute as pc

    builders: dict[Any, ProfileBuilder] = {}
    kwargs = {**kwargs, "workers": 1}  # one builder per window: no thread pool each
    offset = kwargs.pop("row_offset", 0)
    for batch in batches:
        if time_column not in batch.schema.names:
            raise DataError(f"time column '{time_column}' is not in the current window "
                            f"(columns: {', '.join(batch.schema.names)})")
        keys = window_key(batch.column(batch.schema.get_field_index(time_column)), every)
        for key in pc.unique(keys).to_pylist():
            if key is None:
                continue
            mask = pc.fill_null(pc.equal(keys, key), False)
            rows = offset + np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            builders.setdefault(key, ProfileBuilder(time_column=time_column, **kwargs)).add(batch.filter(mask), rows)
        offset += batch.num_rows
    out = []
    for key in sorted(builders):
        start = _as_utc(key)
        out.append(builders[key].finish(label=f"{start:%Y-%m-%d}" + (" (week)" if every == "weekly" else "")))
    return out


def _empty_like(sketch):
    if isinstance(sketch, NumericSketch):
        return NumericSketch(sketch_size=sketch.sketch_size)
    return CategoricalSketch(max_categories=sketch.max_categories)


def merge_profiles(profiles: list[DataProfile]) -> DataProfile:
    """One profile of several windows or partitions (new sketches; the windows stay as they
    are). Their row samples merge into the sample of all their rows when every profile with
    rows carries its :class:`~.samples.RowSample`; otherwise the merged profile has none."""
    out = DataProfile(columns={}, types={}, time_column=profiles[0].time_column if profiles else None)
    for p in profiles:
        for name, sk in p.columns.items():
            if name not in out.columns:
                out.columns[name] = _empty_like(sk)
                out.types[name] = p.types[name]
            out.columns[name].merge(sk)
        out.rows += p.rows
        out.schema += tuple(c for c in p.schema if c not in out.schema)
        if p.time_min is not None:
            out.time_min = p.time_min if out.time_min is None else min(out.time_min, p.time_min)
            out.time_max = p.time_max if out.time_max is None else max(out.time_max, p.time_max)
    samples = [p.row_sample for p in profiles if p.row_sample is not None]
    if samples and all(p.row_sample is not None for p in profiles if p.rows):
        merged = samples[0]
        for sample in samples[1:]:
            merged = merged.merged(sample)
        out.row_sample, out.sample = merged, merged.table
    return out
