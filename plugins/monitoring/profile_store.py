"""Stored reference profiles (record kind ``profile``).

A reference is summarised once into a :class:`ReferenceProfile`: per-column sketches (a
Parquet object with columns ``column``, ``value``, ``category``, ``count``) and a row
sample, versioned per name and linked to the snapshot it was made from, so later windows
never need the reference rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from tether.records import ObjectRef, record, utcnow

from .profiles import DataProfile
from .sketches import (
    CATEGORICAL,
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_SKETCH_SIZE,
    NUMERIC,
    CategoricalSketch,
    NumericSketch,
)


@attrs.frozen(kw_only=True)
class ProfileColumn:
    name: str
    type: str  # Arrow type string
    kind: str  # numeric | categorical
    count: int
    missing: int
    distinct: int
    compressed: bool = False
    #: for a compressed numeric sketch, the bound (in rows) of its cumulative counts' error;
    #: None when unknown (profiles stored before it was recorded)
    rank_error: int | None = None


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


def _sketch_rows(name: str, sketch, arrow_type: str):
    """(columns, values, categories, counts) arrays of one sketch, and its ProfileColumn."""
    import numpy as np

    if isinstance(sketch, NumericSketch):
        k = sketch.values.size
        arrays = (np.full(k + 1, name, dtype=object), np.concatenate(([np.nan], sketch.values)),
                  np.array(["\0missing"] + [None] * k, dtype=object), np.concatenate(([sketch.missing], sketch.counts)))
        return arrays, ProfileColumn(name=name, type=arrow_type, kind=NUMERIC, count=sketch.count,
                                     missing=sketch.missing, distinct=sketch.distinct, compressed=sketch.compressed,
                                     rank_error=sketch.rank_error if sketch.compressed else None)
    rows = [("\0missing", sketch.missing), ("\0overflow", sketch.overflow),
            ("\0overflow_distinct", sketch.overflow_distinct)] + list(sketch.counts.items())
    arrays = (np.full(len(rows), name, dtype=object), np.full(len(rows), np.nan),
              np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=np.int64))
    return arrays, ProfileColumn(name=name, type=arrow_type, kind=CATEGORICAL, count=sketch.count,
                                 missing=sketch.missing, distinct=sketch.distinct, compressed=bool(sketch.overflow))


def _sketch_table(profile: DataProfile):
    """The Parquet-ready table of every column's sketch, and the columns' metadata."""
    import numpy as np
    import pyarrow as pa

    parts, meta = [], []
    for name, sketch in profile.columns.items():
        arrays, column = _sketch_rows(name, sketch, profile.types[name])
        parts.append(arrays)
        meta.append(column)

    def joined(i: int):
        return np.concatenate([part[i] for part in parts]) if parts else []

    table = pa.table({"column": pa.array(joined(0), pa.string()), "value": pa.array(joined(1), pa.float64()),
                      "category": pa.array(joined(2), pa.string()), "count": pa.array(joined(3), pa.int64())})
    return table, tuple(meta)


def save_profile(workspace, profile: DataProfile, *, name: str, snapshot_id: str | None = None, source: str = "",
                 sketch_size: int = DEFAULT_SKETCH_SIZE, max_categories: int = DEFAULT_MAX_CATEGORIES,
                 run_id: str | None = None) -> ReferenceProfile:
    """Store ``profile``'s sketches and sample and write its versioned record."""
    from tether.records import new_id

    table, meta = _sketch_table(profile)
    sketches = workspace.put_frame(table)
    sample = workspace.put_frame(profile.sample) if profile.sample is not None else None
    time_range = (profile.time_min, profile.time_max) if profile.time_min is not None else None

    def build(version: int) -> ReferenceProfile:
        return ReferenceProfile(id=new_id("prof"), name=name, version=version, num_rows=profile.rows,
                                columns=meta, sketches=sketches, sample=sample, snapshot_id=snapshot_id,
                                source=source, time_column=profile.time_column, time_range=time_range,
                                sketch_size=sketch_size, max_categories=max_categories)

    parents = [(snapshot_id, "snapshot")] if snapshot_id else []
    return workspace.store.put_versioned(build, kind="profile", name=name, parents=parents, run_id=run_id)


def _categorical_sketch(categories, counts, max_categories: int) -> CategoricalSketch:
    sketch = CategoricalSketch(max_categories=max_categories)
    for cat, n in zip(categories, counts):
        if cat == "\0missing":
            sketch.missing = int(n)
        elif cat == "\0overflow":
            sketch.overflow = int(n)
        elif cat == "\0overflow_distinct":
            sketch.overflow_distinct = int(n)
        else:
            sketch.counts[cat] = int(n)
    return sketch


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
            sketches[name] = NumericSketch(values=values[start + 1:end].astype(np.float64),
                                           counts=counts[start + 1:end].astype(np.int64), missing=int(counts[start]),
                                           sketch_size=rec.sketch_size, compressed=info.compressed,
                                           rank_error=info.rank_error if info.compressed else 0)
        else:
            sketches[name] = _categorical_sketch(cats[start:end], counts[start:end], rec.max_categories)
    sample = workspace.read_table(rec.sample) if (with_sample and rec.sample) else None
    tmin, tmax = rec.time_range if rec.time_range else (None, None)
    return DataProfile(columns={c.name: sketches[c.name] for c in rec.columns if c.name in sketches},
                       types={c.name: c.type for c in rec.columns}, rows=rec.num_rows, time_column=rec.time_column,
                       time_min=tmin, time_max=tmax, sample=sample, label=f"{rec.name} v{rec.version}")


def find_profile(workspace, ref: str) -> ReferenceProfile:
    """A stored profile by id, unique id prefix, ``NAME`` (latest version) or ``NAME@VERSION``."""
    return workspace.resolve(ref, kind="profile", hint="tether profile")
