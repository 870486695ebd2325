"""Row samples that merge: the rows with the smallest keys, a key being a hash of the row's
number in the whole data set.

Each row's key is the splitmix64 mix of its global row number and a seed: a bijection of
the 64-bit integers, so distinct rows never share a key, and a key depends on nothing but
the row number. A :class:`RowSample` keeps the ``size`` rows with the smallest keys (a
uniform sample without replacement), which is therefore the same whichever way the rows
are cut into batches or partitions, and two samples of disjoint rows merge into the
sample of their union: concatenate, keep the ``size`` smallest keys (ties, possible only
when row numbers repeat, go to the smaller row number). The kept rows are in row order.
"""

from __future__ import annotations

from typing import Any

import attrs

_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def _finalize(z):
    """splitmix64's output mix of the uint64 array ``z``, in place (a bijection)."""
    import numpy as np

    z ^= z >> np.uint64(30)
    z *= np.uint64(_MIX[0])
    z ^= z >> np.uint64(27)
    z *= np.uint64(_MIX[1])
    z ^= z >> np.uint64(31)
    return z


def row_keys(rows, seed: int = 0):
    """The keys (uint64) of the global row numbers ``rows`` under ``seed``: the splitmix64
    output for state ``mix(seed) + (row + 1) * golden``."""
    import numpy as np

    state = _finalize(np.array([seed & _MASK], dtype=np.uint64))
    z = np.asarray(rows, dtype=np.int64).astype(np.uint64)
    z += np.uint64(1)
    z *= np.uint64(_GOLDEN)
    z += state
    return _finalize(z)


@attrs.define
class RowSample:
    """The ``size`` rows with the smallest keys among the rows offered, with their keys and
    global row numbers (aligned with ``table``, in row order)."""

    size: int
    seed: int = 0
    table: Any = None  # pyarrow.Table, or None before any row
    keys: Any = None  # uint64 numpy array
    rows: Any = None  # int64 numpy array

    def add(self, batch, rows) -> None:
        """Offer the rows of ``batch`` (a record batch or table) whose global row numbers are
        ``rows`` (one per row)."""
        import numpy as np
        import pyarrow as pa

        rows = np.asarray(rows, dtype=np.int64)
        keys = row_keys(rows, self.seed)
        pick = np.arange(rows.size)
        if self.table is not None and self.table.num_rows >= self.size:
            pick = np.flatnonzero(keys <= self.keys.max())  # only these can enter a full sample
        if pick.size > self.size:
            pick = pick[np.argpartition(keys[pick], self.size - 1)[:self.size]]
        if not pick.size:
            return
        part = batch.take(pa.array(pick))
        if isinstance(part, pa.RecordBatch):
            part = pa.Table.from_batches([part])
        self._take_union(part, keys[pick], rows[pick])

    def merged(self, other: RowSample) -> RowSample:
        """The sample of the union of this sample's rows and ``other``'s (a new sample)."""
        if other.seed != self.seed:
            raise ValueError(f"row samples with different seeds ({self.seed}, {other.seed}) do not merge")
        out = RowSample(size=max(self.size, other.size), seed=self.seed, table=self.table, keys=self.keys,
                        rows=self.rows)
        if other.table is not None:
            out._take_union(other.table, other.keys, other.rows)
        return out

    def _take_union(self, table, keys, rows) -> None:
        """Keep the ``size`` smallest keys of the current rows and these, in row order."""
        import numpy as np
        import pyarrow as pa

        if self.table is not None:
            try:
                table = pa.concat_tables([self.table, table], promote_options="permissive")
            except pa.ArrowInvalid:
                return  # rows with an incompatible schema: keep the sample we have
            keys, rows = np.concatenate((self.keys, keys)), np.concatenate((self.rows, rows))
        keep = np.lexsort((rows, keys))[:self.size]
        keep = keep[np.argsort(rows[keep], kind="stable")]
        self.table, self.keys, self.rows = table.take(pa.array(keep)), keys[keep], rows[keep]
