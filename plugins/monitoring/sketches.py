"""Mergeable column sketches: what every drift test and health check runs on.

A numeric sketch holds the sorted distinct values with their counts. It is exact until it
holds ``sketch_size`` distinct values (default 10,000,000, so KS statistics and p-values
equal ``scipy.stats.ks_2samp``'s up to that many distinct values a side); then it is
compressed to ``sketch_size // 2`` points at evenly spaced ranks, each carrying the rows
since the previous kept point. A compressed sketch's cumulative count is never above the
data's and at most ``rank_error`` rows below it (tracked through every compression and
merge). Values added in chunks are buffered and sorted in together, so an exact sketch of
n values costs one O(n log n) sort's worth of work, and its memory is 16 bytes per
distinct value. A categorical sketch holds the count of every category (up to
``max_categories``; the rest are counted as overflow). Two sketches of the same column
merge, so a window of any size is read in chunks.
"""

from __future__ import annotations

import math
import threading
from typing import Any, ClassVar

import attrs

NUMERIC = "numeric"
CATEGORICAL = "categorical"
DEFAULT_SKETCH_SIZE = 10_000_000
FLUSH_VALUES = 1 << 16  # buffered raw values sorted into a sketch at least this many at a time
DEFAULT_MAX_CATEGORIES = 10_000


def _unique_counts(values):
    """Sorted distinct values and their counts of a float array (NaN already removed)."""
    import numpy as np

    if values.size == 0:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64)
    s = np.sort(values, kind="quicksort")
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    counts = np.diff(np.append(starts, s.size))
    return s[starts], counts.astype(np.int64, copy=False)


def _merge_counts(v1, c1, v2, c2):
    """Merge two (sorted values, counts) pairs into one."""
    import numpy as np

    if v1.size == 0:
        return v2, c2
    if v2.size == 0:
        return v1, c1
    values = np.concatenate((v1, v2))
    counts = np.concatenate((c1, c2))
    order = np.argsort(values, kind="stable")  # two sorted runs: a linear merge
    values, counts = values[order], counts[order]
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    return values[starts], np.add.reduceat(counts, starts)


@attrs.define
class NumericSketch:
    """Sorted distinct values with counts, plus missing count and moments; mergeable.

    Values added in chunks wait in a buffer of raw arrays: with many ties (rows more than
    twice the distinct values) they are merged in whenever the buffer holds twice the
    sketch's values (at least ``FLUSH_VALUES``); with few ties they wait until the sketch is
    read or must be compressed and are sorted in once, with the sketch's own values. So
    building an exact sketch of n values costs about one sort of n values, and the buffer
    (8 bytes a value) never outgrows what the exact sketch would hold.
    ``rank_error`` bounds how far, in rows, the sketch's cumulative count is below the
    data's at any point (0 while exact; ``None`` when unknown, e.g. a compressed sketch
    stored before the bound was kept).
    """

    _values: Any = None  # float64, sorted, distinct
    _counts: Any = None  # int64
    missing: int = 0
    sketch_size: int = DEFAULT_SKETCH_SIZE
    _compressed: bool = False
    _rank_error: int | None = 0
    _pending: list = attrs.field(factory=list, init=False, repr=False)
    _pending_n: int = attrs.field(default=0, init=False, repr=False)
    _n: int = attrs.field(default=0, init=False, repr=False)  # rows in the sorted part
    _lock: Any = attrs.field(factory=threading.Lock, init=False, repr=False, eq=False)  # tests read in threads
    kind: ClassVar[str] = NUMERIC

    def __attrs_post_init__(self) -> None:
        import numpy as np

        if self._values is None:
            self._values = np.empty(0, dtype=np.float64)
            self._counts = np.empty(0, dtype=np.int64)
        self._n = int(self._counts.sum())
        if self._compressed and self._rank_error == 0:
            self._rank_error = None  # compressed elsewhere, bound not recorded

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (e.g. to travel between cluster workers) flushed and without its lock."""
        self._flush()
        return {"values": self._values, "counts": self._counts, "missing": self.missing,
                "sketch_size": self.sketch_size, "compressed": self._compressed, "rank_error": self._rank_error}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    @property
    def values(self):
        self._flush()
        return self._values

    @property
    def counts(self):
        self._flush()
        return self._counts

    @property
    def compressed(self) -> bool:
        self._flush()
        return self._compressed

    @property
    def rank_error(self) -> int | None:
        self._flush()
        return self._rank_error

    @property
    def count(self) -> int:
        return self._n + self._pending_n

    @property
    def total(self) -> int:
        return self.count + self.missing

    @property
    def distinct(self) -> int:
        return int(self.values.size)

    def add(self, array) -> None:
        """Add a numpy float array (NaN counts as missing)."""
        import numpy as np

        array = np.asarray(array, dtype=np.float64)
        nan = np.isnan(array)
        n_nan = int(nan.sum())
        self.missing += n_nan
        if n_nan:
            array = array[~nan]
        elif array.flags.writeable:
            array = array.copy()  # the caller may reuse its buffer; Arrow's read-only ones are kept as they are
        if array.size:
            self._pending.append(array)
            self._pending_n += array.size
        if self._pending_n < FLUSH_VALUES:
            return
        if self._n > 2 * self._values.size:  # many ties: keep the buffer small, merging often is cheap
            if self._pending_n >= 2 * self._values.size:
                self._flush()
        elif not self._n or self._values.size + self._pending_n > self.sketch_size:
            self._flush()  # the first look at the ties, or the sketch must be compressed

    def flush(self) -> None:
        """Sort the buffered values in now (a profile does it on its worker threads)."""
        self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        with self._lock:
            if self._pending:  # not sorted in by another thread meanwhile
                self._sort_in()

    def _sort_in(self) -> None:
        import numpy as np

        parts = self._pending
        if self._values.size and self._n <= 2 * self._values.size:  # few ties: sorting it all again is faster
            parts = [np.repeat(self._values, self._counts), *parts]
            self._values, self._counts = self._values[:0], self._counts[:0]
        raw = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._n += self._pending_n
        self._pending, self._pending_n = [], 0
        values, counts = _unique_counts(raw)
        del raw, parts
        self._values, self._counts = _merge_counts(self._values, self._counts, values, counts)
        self._maybe_compress()

    def merge(self, other: NumericSketch) -> None:
        self._values, self._counts = _merge_counts(self.values, self.counts, other.values, other.counts)
        self._n += other.count
        self.missing += other.missing
        self._compressed = self._compressed or other.compressed
        errors = (self._rank_error, other.rank_error)
        self._rank_error = None if None in errors else errors[0] + errors[1]
        self._maybe_compress()

    def _maybe_compress(self) -> None:
        """Keep ``sketch_size // 2`` points at evenly spaced ranks, each carrying the rows
        since the previous kept point: the cumulative count only moves down, by at most
        the largest merged count, which is added to ``rank_error``."""
        import numpy as np

        if self._values.size <= self.sketch_size:
            return
        points = max(self.sketch_size // 2, 2)
        cum = np.cumsum(self._counts)
        targets = np.linspace(0, cum[-1], points + 1)[1:]
        keep = np.concatenate(([0], np.searchsorted(cum, targets, side="left"), [cum.size - 1]))
        keep = keep[np.concatenate(([True], keep[1:] != keep[:-1]))]  # sorted already: drop repeats
        counts = np.diff(np.concatenate(([0], cum[keep])))
        moved = int(np.max(counts - self._counts[keep]))  # rows moved up to a kept point
        self._values, self._counts = self._values[keep], counts
        self._compressed = True
        if self._rank_error is not None:
            self._rank_error += moved

    # statistics from the sketch --------------------------------------------------------

    def mean(self) -> float | None:
        import numpy as np

        return float(np.average(self.values, weights=self.counts)) if self.count else None

    def std(self) -> float | None:
        import numpy as np

        if not self.count:
            return None
        mean = np.average(self.values, weights=self.counts)
        return float(math.sqrt(np.average((self.values - mean) ** 2, weights=self.counts)))

    def quantiles(self, qs):
        """Quantiles as ``numpy.quantile`` (linear interpolation) of the expanded sample."""
        import numpy as np

        cum = np.cumsum(self.counts)
        h = np.asarray(qs, dtype=np.float64) * (cum[-1] - 1)
        lo = np.floor(h)

        def at(r):
            # value at 0-based rank r: the first distinct value whose cumulative count exceeds r
            return self.values[np.clip(np.searchsorted(cum, r, side="right"), 0, cum.size - 1)]

        a, b = at(lo), at(lo + 1)
        return a + (h - lo) * (b - a)

    def cdf_at(self, points, side: str = "right"):
        """Counts of values ``<= points`` (``side='right'``) or ``< points`` (``'left'``)."""
        import numpy as np

        cum = np.concatenate(([0], np.cumsum(self.counts)))
        return cum[np.searchsorted(self.values, points, side=side)]

    def expand(self, limit: int | None = None):
        """The values as a sample (each repeated by its count); above ``limit`` values, an
        evenly spaced quantile sample of that size."""
        import numpy as np

        if limit is None or self.count <= limit:
            return np.repeat(self.values, self.counts)
        return self.quantiles((np.arange(limit) + 0.5) / limit)

    def to_categories(self) -> CategoricalSketch:
        out = CategoricalSketch(missing=self.missing, max_categories=max(self.values.size, 1))
        out.add_counts((_fmt(v), c) for v, c in zip(self.values.tolist(), self.counts.tolist()))
        return out


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@attrs.define
class CategoricalSketch:
    """Count of every category; categories beyond ``max_categories`` go to ``overflow``."""

    counts: dict[str, int] = attrs.field(factory=dict)
    missing: int = 0
    overflow: int = 0  # rows in categories that did not fit
    overflow_distinct: int = 0
    max_categories: int = DEFAULT_MAX_CATEGORIES
    kind: ClassVar[str] = CATEGORICAL

    @property
    def count(self) -> int:
        return sum(self.counts.values()) + self.overflow

    @property
    def total(self) -> int:
        return self.count + self.missing

    @property
    def distinct(self) -> int:
        return len(self.counts) + self.overflow_distinct

    def add_arrow(self, array) -> None:
        """Add a pyarrow array of any type (values counted by their string form)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        self.missing += array.null_count
        if pa.types.is_dictionary(array.type):
            array = array.cast(array.type.value_type)
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = array.cast(pa.string())
        vc = pc.value_counts(array.drop_null())
        self.add_counts(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))

    def add_counts(self, pairs) -> None:
        counts = self.counts
        for value, n in pairs:
            if value in counts:
                counts[value] += int(n)
            elif len(counts) < self.max_categories:
                counts[value] = int(n)
            else:
                self.overflow += int(n)
                self.overflow_distinct += 1

    def merge(self, other: CategoricalSketch) -> None:
        self.add_counts(other.counts.items())
        self.missing += other.missing
        self.overflow += other.overflow
        self.overflow_distinct += other.overflow_distinct

    def to_categories(self) -> CategoricalSketch:
        return self


def aligned_counts(ref: CategoricalSketch, cur: CategoricalSketch):
    """(categories, reference counts, current counts) over the union of categories."""
    import numpy as np

    cats = sorted(set(ref.counts) | set(cur.counts))
    r = np.array([ref.counts.get(c, 0) for c in cats], dtype=np.float64)
    c = np.array([cur.counts.get(c, 0) for c in cats], dtype=np.float64)
    if ref.overflow or cur.overflow:
        cats.append("(other)")
        r, c = np.append(r, ref.overflow), np.append(c, cur.overflow)
    return cats, r, c


def ecdf_diff(ref: NumericSketch, cur: NumericSketch):
    """``(grid, F_ref - F_cur)`` on the sorted union of both sketches' values.

    One stable argsort merges the two sorted runs; the CDF difference is an exact integer
    cumulative sum (counts weighted by the other side's size) divided once.
    """
    import numpy as np

    n1, n2 = ref.count, cur.count
    values = np.concatenate((ref.values, cur.values))
    weights = np.concatenate((ref.counts * n2, cur.counts * -n1))
    order = np.argsort(values, kind="stable")  # merge of two sorted runs
    values = values[order]
    diff = np.cumsum(weights[order])
    scale = 1.0 / (n1 * n2)
    ties = values[1:] == values[:-1]
    if not ties.any():  # continuous data: every position ends its own group
        diff = diff * scale
        return values, diff
    last = np.flatnonzero(~np.append(ties, False))  # end of each tie group
    return values[last], diff[last] * scale


def looks_like_identifier(sketch) -> bool:
    """A categorical column whose values are (almost) all distinct: ids, free text, keys."""
    return (isinstance(sketch, CategoricalSketch) and sketch.count >= 100
            and sketch.distinct >= 0.95 * sketch.count)
