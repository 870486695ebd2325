"""Time strategies: ``time`` (train before validation before test) and ``time_group``."""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether.errors import ConfigError
from tether.plugins.rows import LABELS, parse_duration, parse_times

from .base import DeclaredSplit, check_nonempty, counts_from_shares, require_column
from .grouped import check_group_sizes, group_codes


def split_names():
    """``train``, ``validation``, ``test``, ``excluded`` as an object array: indexing it with
    int codes gives split names that share four strings instead of one string per row."""
    import numpy as np

    return np.array(LABELS, dtype=object)


def parse_instant(value: str, param: str, strategy: str):
    """An ISO-8601 timestamp parameter as a UTC ``pandas.Timestamp`` (naive = UTC)."""
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{strategy} split: {param} {value!r} is not an ISO-8601 timestamp") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def parse_gap(value: str | None, strategy: str):
    """The ``gap`` parameter as a non-negative ``pandas.Timedelta`` (zero when unset)."""
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


@attrs.frozen(kw_only=True)
class TimeSplit(DeclaredSplit):
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
        parse_gap(self.gap, self.name)  # reject a bad gap or cutoff when the chain is loaded
        for param in ("validation_start", "test_start"):
            if getattr(self, param):
                parse_instant(getattr(self, param), param, self.name)

    def boundaries(self, times):
        """The start of validation and of test, from the cutoffs or the shares."""
        if self.validation_start or self.test_start:
            return self._cutoffs()
        import numpy as np
        import pandas as pd

        ordered = np.sort(times.dt.tz_localize(None).to_numpy())
        n = len(ordered)
        counts = counts_from_shares(n, self.shares)

        def at(k):
            if k >= n:
                return pd.Timestamp.max.tz_localize("UTC")
            return pd.Timestamp(ordered[k]).tz_localize("UTC")

        return at(counts["train"]), at(counts["train"] + counts["validation"])

    def _cutoffs(self):
        if not (self.validation_start and self.test_start):
            raise ConfigError(f"{self.name} split: give both validation_start and test_start, or neither")
        b_val = parse_instant(self.validation_start, "validation_start", self.name)
        b_test = parse_instant(self.test_start, "test_start", self.name)
        if b_test < b_val:
            raise ConfigError(
                f"{self.name} split: test_start {self.test_start} is before validation_start {self.validation_start}"
            )
        return b_val, b_test

    def _label_codes(self, times, b_val, b_test, gap):
        """Per row the index of its split in :func:`split_names` (int8; rows in a gap are 3, ``excluded``)."""
        import numpy as np

        bv, bt = np.datetime64(b_val.tz_localize(None)), np.datetime64(b_test.tz_localize(None))
        g = np.timedelta64(gap.value, "ns")
        t = times.dt.tz_localize(None).to_numpy()
        codes = (t >= bv).astype(np.int8)
        codes[t >= bt] = 2
        if gap.value:
            codes[(t >= bv - g) & (t < bv)] = 3
            codes[(t >= bt - g) & (t < bt) & (t >= bv)] = 3
        return codes

    def _labels(self, times, b_val, b_test, gap):
        """Split name per row: an object array sharing one string per split (not one per row)."""
        return split_names()[self._label_codes(times, b_val, b_test, gap)]

    def assign(self, frame, *, context=None):
        import pandas as pd

        column = require_column(frame, self.time_column, "time_column", self.name)
        times = parse_times(frame[column], column, where=f"{self.name} split")
        b_val, b_test = self.boundaries(times)
        labels = self._labels(times, b_val, b_test, parse_gap(self.gap, self.name))
        check_nonempty(labels, self.shares, self.name, f"the boundaries leave no rows there (time column '{column}')")
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

        column = require_column(frame, self.time_column, "time_column", self.name)
        entity = require_column(frame, self.entity_column, "entity_column", self.name)
        times = parse_times(frame[column], column, where=f"{self.name} split")
        codes, uniques = group_codes(frame, entity, self.name)
        b_val, b_test = self.boundaries(times)
        row_codes = self._label_codes(times, b_val, b_test, parse_gap(self.gap, self.name))
        t = times.dt.tz_localize(None).to_numpy().view("int64")
        del times
        order = np.lexsort((t, codes))  # by entity, then time
        ends = np.flatnonzero(np.r_[codes[order][1:] != codes[order][:-1], True])
        last_pos = np.empty(len(uniques), dtype=np.int64)
        last_pos[codes[order[ends]]] = order[ends]  # the row holding each entity's last time
        del order, ends, t
        label_codes = row_codes[last_pos][codes]
        # rows in another split than their entity's (earlier ones, or inside a gap) are excluded
        label_codes[label_codes != row_codes] = 3
        del row_codes
        labels = split_names()[label_codes]
        check_group_sizes(np.bincount(codes, minlength=len(uniques)), self.shares, uniques, self.name, entity)
        check_nonempty(labels, self.shares, self.name, f"no entity of '{entity}' ends there")
        return pd.Series(labels, index=frame.index, dtype=object)
