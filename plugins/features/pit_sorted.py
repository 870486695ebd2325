"""The point-in-time join by sorting and binary search, for one entity key column.

Each feature row becomes one int64, ``code(entity) * S + (t - t_min) // u``, where ``u``
is the coarsest unit (1 s, 1 ms, 1 us or 1 ns) dividing every ``t - t_min``; after one
sort, the row an entity row ``(k, p)`` uses is found by a binary search for
``code(k) * S + floor((p - lag - t_min) / u)`` (a feature time ``t`` that is a multiple of
``u`` satisfies ``t <= x`` exactly when ``t <= floor(x / u) * u``). The searches run in
sorted order, so they touch memory sequentially. The feature rows are sorted once per
table whatever the number of lag/TTL groups, and duplicates of ``(entity, t)`` sit next
to each other after the sort, so finding them costs one comparison per row.

:func:`sorted_join` returns ``None`` when this encoding does not apply (the codes times
the time span do not fit in 63 bits, or keys that cannot be compared without a cast);
the caller then uses DuckDB's ASOF join, which gives the same result.
"""

from __future__ import annotations

from typing import Any

from tether.errors import DataError

_UNITS = (1_000_000_000, 1_000_000, 1_000)
_LIMIT = 2**62


def _codes(left_key, right_key):
    """Dense codes of the feature keys, and the entity keys' codes (-1: no feature row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(right_key.type) and pa.types.is_integer(left_key.type) and len(right_key):
        try:
            right, left = right_key.cast(pa.int64()).to_numpy(), left_key.cast(pa.int64())
        except pa.ArrowInvalid:  # unsigned values beyond int64
            right = None
        if right is not None:
            low, high = int(right.min()), int(right.max())
            if -_LIMIT < low and high < _LIMIT and high - low <= 4 * len(right) + 1024:  # dense: shift the key
                left = np.asarray(left.fill_null(low - 1).to_numpy(), dtype=np.int64)
                outside = (left < low) | (left > high)
                left = left - low
                left[outside] = -1
                return right - low, left, high - low + 1
    try:
        encoded = pc.dictionary_encode(right_key).combine_chunks()
        found = pc.index_in(left_key.cast(encoded.type.value_type), value_set=encoded.dictionary)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    right = encoded.indices.to_numpy().astype(np.int64, copy=False)
    left = found.fill_null(-1).to_numpy().astype(np.int64, copy=False)
    return right, left, len(encoded.dictionary)


def _slots(offsets, span: int, cardinality: int):
    """(unit, offsets // unit): the coarsest unit dividing every time offset such that
    codes x span fit in int64, or ``(None, None)``."""
    import numpy as np

    if cardinality * (span + 1) < _LIMIT:
        return 1, offsets
    for unit in _UNITS:
        if cardinality * (span // unit + 1) < _LIMIT:
            whole, rest = np.divmod(offsets, unit)
            if not rest.any():
                return unit, whole
    return None, None


class SortedFeatures:
    """One feature table's keys and times, encoded and sorted once for every lag group."""

    def __init__(self, codes, slots_of_rows, ft_ns, unit: int, t_min: int, span: int):
        import numpy as np

        self.ft_ns, self.unit, self.t_min = ft_ns, unit, t_min
        self.slots = span // unit + 1
        composite = np.multiply(codes, self.slots)
        composite += slots_of_rows
        self.order = np.argsort(composite)
        self.sorted = np.sort(composite)  # the same as composite[order], and faster than gathering
        self.equal = self.sorted[1:] == self.sorted[:-1]  # duplicates of (entity, t) are neighbours
        self.has_duplicates = bool(self.equal.any())

    def find(self, left_codes, pred_ns, lag_ns: int, ttl_ns: int | None):
        """(row numbers, missing mask) of the feature row each entity row uses."""
        import numpy as np

        query = pred_ns - (self.t_min + lag_ns)
        if self.unit != 1:
            np.floor_divide(query, self.unit, out=query)
        np.clip(query, -1, self.slots - 1, out=query)
        query += left_codes * self.slots
        order = np.argsort(query)
        pos = np.empty(len(query), dtype=np.int64)
        pos[order] = np.searchsorted(self.sorted, np.sort(query), side="right") - 1
        valid = (left_codes >= 0) & (pos >= 0)
        safe = np.where(valid, pos, 0)
        if len(self.sorted):
            valid &= self.sorted[safe] // self.slots == left_codes
        else:
            valid[:] = False
        rows = self.order[safe] if len(self.order) else safe
        if ttl_ns is not None and len(self.ft_ns):
            valid &= (pred_ns - self.ft_ns[rows]) <= ttl_ns
        return rows, safe, ~valid

    def runs(self):
        """Run id of each sorted position, and the first position of each run."""
        import numpy as np

        starts = np.flatnonzero(np.concatenate([[True], ~self.equal]))
        run = np.cumsum(np.concatenate([[True], ~self.equal])) - 1
        return run, starts


def sorted_join(left_key, pred_ns, right_key, ft_ns, groups: dict[tuple, list[str]], *, duplicates: str,
                describe) -> list[tuple[list[str], Any, Any]] | None:
    """Per lag/TTL group: (columns, row numbers, missing mask), or ``None`` to use DuckDB.

    ``left_key``/``right_key`` are Arrow arrays, ``pred_ns``/``ft_ns`` int64 numpy arrays of
    epoch nanoseconds; ``describe(row, count)`` builds the duplicate error's message.
    """
    import numpy as np

    coded = _codes(left_key, right_key)
    if coded is None:
        return None
    right_codes, left_codes, cardinality = coded
    t_min = int(ft_ns.min()) if len(ft_ns) else 0
    span = int(ft_ns.max()) - t_min if len(ft_ns) else 0
    unit, slots_of_rows = _slots(ft_ns - t_min, span, max(cardinality, 1))
    if unit is None or any(abs(lag) >= _LIMIT or abs(ttl or 0) >= _LIMIT for lag, ttl in groups):
        return None
    table = SortedFeatures(right_codes, slots_of_rows, ft_ns, unit, t_min, span)
    found = [(cols, *table.find(left_codes, pred_ns, lag, ttl)) for (lag, ttl), cols in groups.items()]
    if not table.has_duplicates:
        return [(cols, rows, missing) for cols, rows, _, missing in found]
    run, starts = table.runs()
    if duplicates == "last":  # the run's last row in input order: the greatest row number
        last = np.maximum.reduceat(table.order, starts)
        return [(cols, last[run[pos]], missing) for cols, _, pos, missing in found]
    used = np.unique(np.concatenate([pos[~missing] for _, _, pos, missing in found]))
    sizes = np.diff(np.append(starts, len(table.sorted)))
    repeated = np.unique(run[used][sizes[run[used]] > 1])
    if len(repeated):
        raise DataError(describe(int(table.order[starts[repeated[0]]]), int((sizes[repeated] - 1).sum())))
    return [(cols, rows, missing) for cols, rows, _, missing in found]
