"""``exact_duplicates``: identical rows in more than one split."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from tether.backends import LeakageCheck
from tether.records import Finding
from tether.validators import at_least

from .evidence import cap, pairs_text, rows_by_split, split_pairs
from .input import LeakageInput


def groups_across_splits(keys, codes):
    """Rows whose key is shared with a row of another split (excluded rows ignored).

    Returns the rows (sorted), the number of such key groups and the groups per pair of splits.
    """
    import numpy as np

    live = np.flatnonzero(codes >= 0)
    k = keys[live]
    order = np.argsort(k, kind="stable")
    k = k[order]
    if len(k) == 0:
        return live[:0], 0, {}
    # only keys held by two rows or more can span splits: keep their rows (few, in most data)
    same = k[1:] == k[:-1]
    shared = np.zeros(len(k), dtype=bool)
    shared[1:] = same
    shared[:-1] |= same
    del same
    order = order[shared]
    k, c, rows = k[shared], codes[live[order]], live[order]
    del order, shared, live
    if len(k) == 0:
        return rows, 0, {}
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    leaking = np.minimum.reduceat(c, starts) != np.maximum.reduceat(c, starts)
    flag = np.repeat(leaking, np.diff(np.r_[starts, len(k)]))
    has = [np.bitwise_or.reduceat((c == s).astype(np.int8), starts).astype(bool) for s in range(3)]
    pairs = split_pairs(lambda a, b: np.sum(has[a] & has[b]))
    return np.sort(rows[flag]), int(leaking.sum()), pairs


@attrs.frozen(kw_only=True)
class DuplicateGroups:
    """Rows identical to a row of another split: ``rows`` (sorted row numbers), their
    fingerprints ``keys`` and split ``codes`` (aligned with ``rows``), the number of
    ``groups`` and the groups per pair of splits; ``columns`` are the compared ones."""

    rows: Any
    keys: Any
    codes: Any
    groups: int
    pairs: dict[str, int]
    columns: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class ExactDuplicates(LeakageCheck):
    """Identical rows (every compared column equal) in more than one split."""

    name: ClassVar[str] = "exact_duplicates"
    default_action: ClassVar[str] = "fail"
    sample: int = attrs.field(default=50, validator=at_least(1))

    def check(self, data: LeakageInput) -> list[Finding]:
        keys = data.compared_fingerprints
        rows, groups, pairs = groups_across_splits(keys, data.codes)
        found = DuplicateGroups(rows=rows, keys=keys[rows], codes=data.codes[rows], groups=groups, pairs=pairs,
                                columns=tuple(str(c) for c in data.compared_columns()))
        return self.findings(found)

    def findings(self, found: DuplicateGroups) -> list[Finding]:
        """The finding of duplicate groups found here or by an engine (``Engine.exact_duplicates``)."""
        import numpy as np

        rows, groups, pairs = found.rows, found.groups, found.pairs
        if not groups:
            return []
        return [Finding(
            check=self.name, severity="error",
            message=f"{len(rows)} rows in {groups} groups of identical rows are in more than one split "
                    f"({pairs_text(pairs)})",
            evidence={"n_rows": len(rows), "n_groups": groups, "split_pairs": pairs,
                      "rows_by_split": rows_by_split(np.arange(len(rows)), found.codes),
                      "rows": cap(rows, self.sample),
                      "fingerprints": [f"{int(k):016x}" for k in sorted(set(found.keys[:self.sample].tolist()))],
                      "columns": list(found.columns)},
            fix="drop duplicate rows before splitting (DataFrame.drop_duplicates), or split by entity so "
                "copies stay in one split; list surrogate ids under ignore_columns so copies are recognised",
        )]
