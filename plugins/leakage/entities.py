"""``entity_overlap``: an entity with rows in more than one split."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from tether.backends import LeakageCheck
from tether.records import Finding
from tether.validators import at_least

from .evidence import cap, pairs_text, split_pairs
from .input import LeakageInput


@attrs.frozen(kw_only=True)
class SharedEntities:
    """Entities of ``column`` with rows in more than one split: ``n_entities`` of them, the
    first in order of first appearance in the data (``entities``, at least the check's
    ``sample`` of them when there are as many), their ``n_rows`` rows outside ``excluded``
    (``rows``: the first of them in row order, as many) and the entities shared per pair of
    splits (``pairs``). ``entities_by_split`` counts the distinct entities of each split
    name (``excluded`` included) when the producer counted them (an engine does, for the
    audit summary; the local check does not)."""

    column: str
    n_entities: int = 0
    entities: tuple[Any, ...] = ()
    n_rows: int = 0
    rows: Any = ()
    pairs: dict[str, int] = attrs.field(factory=dict)
    entities_by_split: dict[str, int] | None = None


@attrs.frozen(kw_only=True)
class EntityOverlap(LeakageCheck):
    """An entity of ``entity_column`` with rows in more than one split."""

    name: ClassVar[str] = "entity_overlap"
    default_action: ClassVar[str] = "fail"
    sample: int = attrs.field(default=50, validator=at_least(1))

    def check(self, data: LeakageInput) -> list[Finding]:
        if not data.entity_column:
            return []
        return self.findings(self.shared(data))

    def shared(self, data: LeakageInput) -> SharedEntities:
        """The entities of ``data.entity_column`` in more than one split."""
        import numpy as np
        import pandas as pd

        column = data.entity_column
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
            return SharedEntities(column=column)
        is_bad = np.zeros(len(uniques), dtype=bool)
        is_bad[bad] = True
        rows = np.flatnonzero(live & is_bad[ent])  # a lookup, not np.isin's sort of every row
        in_split = np.zeros((3, len(uniques)), dtype=bool)
        for s in range(3):
            in_split[s, e[c == s]] = True
        pairs = split_pairs(lambda a, b: np.sum(in_split[a] & in_split[b]))
        return SharedEntities(column=column, n_entities=len(bad), entities=tuple(uniques[bad[: self.sample]]),
                              n_rows=len(rows), rows=rows[: self.sample], pairs=pairs)

    def findings(self, found: SharedEntities) -> list[Finding]:
        """The finding of shared entities found here or by an engine (``Engine.entity_overlap``)."""
        if not found.n_entities:
            return []
        column, pairs = found.column, found.pairs
        return [Finding(
            check=self.name, severity="error",
            message=f"{found.n_entities} entities of '{column}' are in more than one split "
                    f"({pairs_text(pairs)}; {found.n_rows} rows)",
            evidence={"column": column, "n_entities": found.n_entities, "n_rows": found.n_rows,
                      "split_pairs": pairs, "entities": cap(found.entities, self.sample),
                      "rows": cap(found.rows, self.sample)},
            fix=f"split by entity (plugin: group, stratified_group or time_group with entity_column: {column}) "
                f"so every {column} is in one split",
        )]
