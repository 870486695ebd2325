"""``entity_overlap``: an entity with rows in more than one split."""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether.backends import LeakageCheck
from tether.records import Finding
from tether.validators import at_least

from .evidence import cap, pairs_text, split_pairs
from .input import LeakageInput


@attrs.frozen(kw_only=True)
class EntityOverlap(LeakageCheck):
    """An entity of ``entity_column`` with rows in more than one split."""

    name: ClassVar[str] = "entity_overlap"
    default_action: ClassVar[str] = "fail"
    sample: int = attrs.field(default=50, validator=at_least(1))

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np
        import pandas as pd

        column = data.entity_column
        if not column:
            return []
        codes = data.codes
        ent, uniques = pd.factorize(data.frame[column], use_na_sentinel=True)
        ent = ent.astype(np.int32, copy=False) if len(uniques) < 2**31 - 1 else ent
        live = (codes >= 0) & (ent >= 0)
        e, c = ent[live], codes[live]
        lo = np.full(len(uniques), 9, dtype=np.int8)
        hi = np.full(len(uniques), -1, dtype=np.int8)
        np.minimum.at(lo, e, c)
        np.maximum.at(hi, e, c)
        bad = np.flatnonzero((hi >= 0) & (lo != hi))
        if not len(bad):
            return []
        is_bad = np.zeros(len(uniques), dtype=bool)
        is_bad[bad] = True
        rows = np.flatnonzero(live & is_bad[ent])  # a lookup, not np.isin's sort of every row
        in_split = np.zeros((3, len(uniques)), dtype=bool)
        for s in range(3):
            in_split[s, e[c == s]] = True
        pairs = split_pairs(lambda a, b: np.sum(in_split[a] & in_split[b]))
        return [Finding(
            check=self.name, severity="error",
            message=f"{len(bad)} entities of '{column}' are in more than one split "
                    f"({pairs_text(pairs)}; {len(rows)} rows)",
            evidence={"column": column, "n_entities": len(bad), "n_rows": len(rows),
                      "split_pairs": pairs, "entities": cap(uniques[bad[: self.sample]], self.sample),
                      "rows": cap(rows, self.sample)},
            fix=f"split by entity (plugin: group, stratified_group or time_group with entity_column: {column}) "
                f"so every {column} is in one split",
        )]
