"""Reference profiles and current windows: where monitored data comes from, in chunks.

* :class:`ProfileBuilder` turns Arrow record batches into a :class:`DataProfile`: one
  mergeable sketch per column (see :mod:`tether.plugins.drift`), row count, schema, time
  range and a uniform row sample (bottom-k of random keys, so it merges across chunks).
  Memory is bounded by the chunk size plus the sketches, whatever the number of rows.
* :class:`ReferenceProfile` (record kind ``profile``) stores a profile once, versioned
  per name and linked to its snapshot, so later windows never need the reference rows.
* Window sources (backend kind ``window``) yield a current window's record batches:
  ``snapshot`` (a stored snapshot), ``file`` (CSV or Parquet path) and ``deployment``
  (the prediction table a deployment wrote). A deployment plugin adds its own (e.g. a
  prediction log) by subclassing :class:`WindowSource`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
from tether import hookimpl
from tether.backends import Backend
from tether.errors import DataError, NotFoundError
from tether.records import ObjectRef, record, utcnow

from .drift import (
    CATEGORICAL,
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_SKETCH_SIZE,
    NUMERIC,
    CategoricalSketch,
    NumericSketch,
)

DEFAULT_BATCH_ROWS = 262_144


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
    sample: Any = None  # pyarrow.Table of at most sample_rows rows, or None
    label: str = ""

    def merge(self, other: DataProfile) -> None:
        for name, sketch in other.columns.items():
            if name in self.columns:
                self.columns[name].merge(sketch)
            else:
                self.columns[name] = sketch
                self.types[name] = other.types[name]
        self.rows += other.rows
        if other.time_min is not None:
            self.time_min = other.time_min if self.time_min is None else min(self.time_min, other.time_min)
            self.time_max = other.time_max if self.time_max is None else max(self.time_max, other.time_max)


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
    workers: int = 1  # threads updating column sketches (numpy and Arrow release the GIL)
    _pool: Any = attrs.field(default=None, init=False)
    _sketches: dict[str, Any] = attrs.field(factory=dict, init=False)
    _types: dict[str, str] = attrs.field(factory=dict, init=False)
    _rows: int = attrs.field(default=0, init=False)
    _tmin: Any = attrs.field(default=None, init=False)
    _tmax: Any = attrs.field(default=None, init=False)
    _sample: Any = attrs.field(default=None, init=False)
    _keys: Any = attrs.field(default=None, init=False)
    _rng: Any = attrs.field(default=None, init=False)

    def wanted(self, schema) -> list[str]:
        names = list(self.columns) if self.columns else list(schema.names)
        return [n for n in names if n in schema.names and n not in self.exclude and n != self.time_column]

    def add(self, batch) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(batch, pa.Table):
            for b in batch.to_batches():
                self.add(b)
            if batch.num_rows == 0:
                self._note_schema(batch.schema)
            return
        self._note_schema(batch.schema)
        n = batch.num_rows
        if n == 0:
            return
        self._rows += n

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
        if self.time_column and self.time_column in batch.schema.names:
            mm = pc.min_max(batch.column(batch.schema.get_field_index(self.time_column)))
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            if lo is not None:
                self._tmin = lo if self._tmin is None else min(self._tmin, lo)
                self._tmax = hi if self._tmax is None else max(self._tmax, hi)
        if self.sample_rows:
            if self._rng is None:
                self._rng = np.random.default_rng(self.seed)
            keys = self._rng.random(n)
            take = np.argsort(keys)[: self.sample_rows] if n > self.sample_rows else np.arange(n)
            part = pa.Table.from_batches([batch.take(pa.array(take))])
            if self._sample is None:
                self._sample, self._keys = part, keys[take]
            else:
                try:
                    merged = pa.concat_tables([self._sample, part], promote_options="permissive")
                except pa.ArrowInvalid:
                    return  # a chunk with an incompatible schema: keep the sample we have
                all_keys = np.concatenate((self._keys, keys[take]))
                keep = np.argsort(all_keys)[: self.sample_rows]
                self._sample, self._keys = merged.take(pa.array(keep)), all_keys[keep]

    def _note_schema(self, schema) -> None:
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
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return DataProfile(columns=self._sketches, types=self._types, rows=self._rows, time_column=self.time_column,
                           time_min=_as_utc(self._tmin), time_max=_as_utc(self._tmax), sample=self._sample, label=label)


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
            raise DataError(f"time column '{time_column}' is not in the data (columns: {', '.join(batch.schema.names)})")
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
    """One profile per daily/weekly window of ``time_column``, oldest first, built chunk by chunk."""
    import pyarrow.compute as pc

    builders: dict[Any, ProfileBuilder] = {}
    kwargs = {**kwargs, "workers": 1}  # one builder per window: no thread pool each
    for batch in batches:
        if time_column not in batch.schema.names:
            raise DataError(f"time column '{time_column}' is not in the current window "
                            f"(columns: {', '.join(batch.schema.names)})")
        keys = window_key(batch.column(batch.schema.get_field_index(time_column)), every)
        for key in pc.unique(keys).to_pylist():
            if key is None:
                continue
            part = batch.filter(pc.equal(keys, key))
            builders.setdefault(key, ProfileBuilder(time_column=time_column, **kwargs)).add(part)
    out = []
    for key in sorted(builders):
        start = _as_utc(key)
        out.append(builders[key].finish(label=f"{start:%Y-%m-%d}" + (" (week)" if every == "weekly" else "")))
    return out


# --- Stored reference profiles ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProfileColumn:
    name: str
    type: str  # Arrow type string
    kind: str  # numeric | categorical
    count: int
    missing: int
    distinct: int
    compressed: bool = False


@record("profile")
class ReferenceProfile:
    """A reference summarised once: per-column sketches (``sketches``, a Parquet object with
    columns ``column``, ``value``, ``category``, ``count``), a row ``sample`` for multivariate
    tests, linked to the snapshot it was made from. ``version`` counts up per ``name``."""

    id: str
    name: str
    version: int
    num_rows: int
    columns: tuple[ProfileColumn, ...]
    sketches: ObjectRef
    sample: ObjectRef | None = None
    snapshot_id: str | None = None
    source: str = ""
    time_column: str | None = None
    time_range: tuple[dt.datetime, dt.datetime] | None = None
    sketch_size: int = DEFAULT_SKETCH_SIZE
    max_categories: int = DEFAULT_MAX_CATEGORIES
    created_at: dt.datetime = attrs.field(factory=utcnow)


def save_profile(workspace, profile: DataProfile, *, name: str, snapshot_id: str | None = None, source: str = "",
                 sketch_size: int = DEFAULT_SKETCH_SIZE, max_categories: int = DEFAULT_MAX_CATEGORIES,
                 run_id: str | None = None) -> ReferenceProfile:
    """Store ``profile``'s sketches and sample and write its versioned record."""
    import numpy as np
    import pyarrow as pa

    cols, vals, cats, counts = [], [], [], []
    meta = []
    for col, sk in profile.columns.items():
        if isinstance(sk, NumericSketch):
            k = sk.values.size
            cols.append(np.full(k + 1, col, dtype=object))
            vals.append(np.concatenate(([np.nan], sk.values)))
            cats.append(np.array(["\0missing"] + [None] * k, dtype=object))
            counts.append(np.concatenate(([sk.missing], sk.counts)))
            meta.append(ProfileColumn(name=col, type=profile.types[col], kind=NUMERIC, count=sk.count,
                                      missing=sk.missing, distinct=sk.distinct, compressed=sk.compressed))
        else:
            items = list(sk.counts.items())
            extra = [("\0missing", sk.missing), ("\0overflow", sk.overflow), ("\0overflow_distinct", sk.overflow_distinct)]
            rows = extra + items
            cols.append(np.full(len(rows), col, dtype=object))
            vals.append(np.full(len(rows), np.nan))
            cats.append(np.array([r[0] for r in rows], dtype=object))
            counts.append(np.array([r[1] for r in rows], dtype=np.int64))
            meta.append(ProfileColumn(name=col, type=profile.types[col], kind=CATEGORICAL, count=sk.count,
                                      missing=sk.missing, distinct=sk.distinct, compressed=bool(sk.overflow)))
    table = pa.table({
        "column": pa.array(np.concatenate(cols) if cols else [], pa.string()),
        "value": pa.array(np.concatenate(vals) if vals else [], pa.float64()),
        "category": pa.array(np.concatenate(cats) if cats else [], pa.string()),
        "count": pa.array(np.concatenate(counts) if counts else [], pa.int64()),
    })
    sketches = workspace.put_frame(table)
    sample = workspace.put_frame(profile.sample) if profile.sample is not None else None
    time_range = (profile.time_min, profile.time_max) if profile.time_min is not None else None
    from tether.records import new_id

    def build(version: int) -> ReferenceProfile:
        return ReferenceProfile(id=new_id("prof"), name=name, version=version, num_rows=profile.rows,
                                columns=tuple(meta), sketches=sketches, sample=sample, snapshot_id=snapshot_id,
                                source=source, time_column=profile.time_column, time_range=time_range,
                                sketch_size=sketch_size, max_categories=max_categories)

    parents = [(snapshot_id, "snapshot")] if snapshot_id else []
    return workspace.store.put_versioned(build, kind="profile", name=name, parents=parents, run_id=run_id)


def load_profile(workspace, rec: ReferenceProfile, *, with_sample: bool = True) -> DataProfile:
    """The in-memory profile of a stored record (objects verified against their digests)."""
    import numpy as np

    table = workspace.read_table(rec.sketches)
    column = np.asarray(table.column("column").to_pylist(), dtype=object)
    values = table.column("value").to_numpy(zero_copy_only=False)
    cats = table.column("category").to_pylist()
    counts = table.column("count").to_numpy()
    order = {c.name: c for c in rec.columns}
    sketches: dict[str, Any] = {}
    bounds = np.flatnonzero(np.concatenate(([True], column[1:] != column[:-1]))) if column.size else np.array([], int)
    ends = np.append(bounds[1:], column.size)
    for start, end in zip(bounds, ends):
        name = column[start]
        info = order[name]
        if info.kind == NUMERIC:
            sk = NumericSketch(values=values[start + 1:end].astype(np.float64), counts=counts[start + 1:end].astype(np.int64),
                               missing=int(counts[start]), sketch_size=rec.sketch_size, compressed=info.compressed)
        else:
            sk = CategoricalSketch(max_categories=rec.max_categories)
            for cat, n in zip(cats[start:end], counts[start:end]):
                if cat == "\0missing":
                    sk.missing = int(n)
                elif cat == "\0overflow":
                    sk.overflow = int(n)
                elif cat == "\0overflow_distinct":
                    sk.overflow_distinct = int(n)
                else:
                    sk.counts[cat] = int(n)
        sketches[name] = sk
    sample = workspace.read_table(rec.sample) if (with_sample and rec.sample) else None
    tmin, tmax = rec.time_range if rec.time_range else (None, None)
    return DataProfile(columns={c.name: sketches[c.name] for c in rec.columns if c.name in sketches},
                       types={c.name: c.type for c in rec.columns}, rows=rec.num_rows, time_column=rec.time_column,
                       time_min=tmin, time_max=tmax, sample=sample, label=f"{rec.name} v{rec.version}")


def find_profile(workspace, ref: str) -> ReferenceProfile:
    """A stored profile by id, or the latest version of a profile name (``name`` or ``name@3``)."""
    rec = workspace.store.get(ref, kind="profile")
    if rec is not None:
        return rec
    name, _, version = ref.partition("@")
    found = workspace.store.find("profile", name=name)
    if version:
        found = [r for r in found if str(r.version) == version]
    if not found:
        raise NotFoundError(f"no reference profile '{ref}' in {workspace.root} (create one with `tether profile`)")
    return found[0]


# --- Window sources -----------------------------------------------------------------------


class WindowSource(Backend):
    """Reads a current window in chunks.

    Implement ``batches(self, *, context) -> Iterator[pyarrow.RecordBatch]`` and
    ``describe(self) -> str``; set ``time_column`` if the source knows it (else ``None``).
    """

    kind = "window"

    def time_column_of(self, *, context) -> str | None:
        return getattr(self, "time_column", None)


def _parquet_batches(path_or_buffer, batch_rows: int, columns=None) -> Iterator:
    import pyarrow.parquet as pq

    # no pre-buffering of whole row groups and a small read buffer: memory follows batch_rows
    pf = pq.ParquetFile(path_or_buffer, pre_buffer=False, buffer_size=1 << 20)
    if pf.metadata.num_rows == 0:
        import pyarrow as pa

        yield pa.RecordBatch.from_pylist([], schema=pf.schema_arrow)  # the schema still counts
        return
    yield from pf.iter_batches(batch_size=batch_rows, columns=columns)


def stored_batches(workspace, ref: ObjectRef, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator:
    """Record batches of a stored Parquet object; read from disk in chunks when the storage
    has a local path (after verifying the digest), else from the verified bytes."""
    import pyarrow as pa

    storage = workspace.storage
    local = getattr(storage, "local_path", None)
    verify = getattr(storage, "verify", None)
    if local is not None and verify is not None:
        verify(ref)
        source = str(local(ref))
    else:
        source = pa.BufferReader(storage.read_bytes(ref))
    for batch in _parquet_batches(source, batch_rows):
        if batch is not None:
            yield batch


@attrs.frozen(kw_only=True)
class SnapshotWindow(WindowSource):
    """A stored snapshot, by id."""

    name: ClassVar[str] = "snapshot"
    snapshot: str
    batch_rows: int = DEFAULT_BATCH_ROWS

    def record(self, context):
        return context.get(self.snapshot, kind="snapshot")

    def batches(self, *, context):
        snap = self.record(context)
        for ref in snap.objects:
            yield from stored_batches(context.workspace, ref, self.batch_rows)

    def time_column_of(self, *, context):
        return self.record(context).time_column

    def describe(self) -> str:
        return f"snapshot:{self.snapshot}"


@attrs.frozen(kw_only=True)
class FileWindow(WindowSource):
    """A CSV or Parquet file (or a folder of Parquet files), read ``batch_rows`` at a time."""

    name: ClassVar[str] = "file"
    path: str
    time_column: str | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS

    def batches(self, *, context):
        path = context.resolve_path(self.path) if context is not None else Path(self.path)
        yield from file_batches(path, self.batch_rows)

    def describe(self) -> str:
        return f"file:{self.path}"


def file_batches(path, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator:
    """Record batches of a CSV/Parquet file or a folder of Parquet files; errors name the file."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.exists():
        raise DataError(f"file '{path}' not found")
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            files = sorted(path.glob("*.parquet"))
            if not files:
                raise DataError(f"folder '{path}' holds no .parquet files")
            for f in files:
                yield from (b for b in _parquet_batches(str(f), batch_rows) if b is not None)
        elif suffix in (".parquet", ".pq"):
            yield from (b for b in _parquet_batches(str(path), batch_rows) if b is not None)
        elif suffix in (".csv", ".tsv", ".txt", ".gz"):
            if path.stat().st_size == 0:
                raise DataError(f"file '{path}' is empty (not even a header row)")
            parse = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            reader = pacsv.open_csv(path, parse_options=parse,
                                    read_options=pacsv.ReadOptions(block_size=1 << 24))
            empty = True
            for batch in reader:
                empty = False
                yield batch
            if empty:
                yield pa.RecordBatch.from_pylist([], schema=reader.schema)
        else:
            raise DataError(f"file '{path}': unsupported type '{suffix}'; use .csv or .parquet")
    except DataError:
        raise
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise DataError(f"file '{path}' cannot be read: {str(exc).splitlines()[0]}") from None


@attrs.frozen(kw_only=True)
class DeploymentWindow(WindowSource):
    """The prediction table a deployment wrote (its ``outputs``); ``latest`` picks the newest."""

    name: ClassVar[str] = "deployment"
    deployment: str = "latest"
    batch_rows: int = DEFAULT_BATCH_ROWS

    def record(self, context):
        if self.deployment == "latest":
            found = context.store.find("deployment", limit=1)
            if not found:
                raise NotFoundError(f"no deployment in {context.workspace.root} to monitor")
            return found[0]
        return context.get(self.deployment, kind="deployment")

    def batches(self, *, context):
        dep = self.record(context)
        if not dep.outputs:
            raise DataError(f"deployment {dep.id} wrote no prediction table to monitor")
        for ref in dep.outputs:
            yield from stored_batches(context.workspace, ref, self.batch_rows)

    def time_column_of(self, *, context):
        dep = self.record(context)
        snap_id = dep.details.get("snapshot_id")
        snap = context.store.get(snap_id, kind="snapshot") if snap_id else None
        return snap.time_column if snap else None

    def describe(self) -> str:
        return f"deployment:{self.deployment}"


@hookimpl
def tether_add_backends(backends):
    for cls in (SnapshotWindow, FileWindow, DeploymentWindow):
        backends.add(cls)
