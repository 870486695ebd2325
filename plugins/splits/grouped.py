"""Entity strategies: ``group`` and ``stratified_group`` keep every entity in one split."""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether.errors import DataError
from tether.plugins.rows import SPLITS

from .base import DeclaredSplit, check_nonempty, check_stratify_classes, py_scalar, require_column


def group_codes(frame, column: str, strategy: str):
    """Integer codes of a group column and its unique values; nulls are a :class:`DataError`."""
    import pandas as pd

    values = frame[column]
    nulls = int(values.isna().sum())
    if nulls:
        first = int(values.isna().to_numpy().argmax())
        raise DataError(
            f"{strategy} split: group column '{column}' has {nulls} null values (first at row {first}); "
            f"fill or drop them so every row belongs to an entity"
        )
    codes, uniques = pd.factorize(values, sort=False)
    return codes, uniques


def check_group_sizes(group_rows, shares: dict[str, float], names, strategy: str, column: str) -> None:
    """No entity may have more rows than the largest split can hold."""
    import numpy as np

    total = int(group_rows.sum())
    largest = max(shares, key=shares.get)
    too_big = np.flatnonzero(group_rows > shares[largest] * total)
    if len(too_big):
        g = too_big[0]
        raise DataError(
            f"{strategy} split: entity {py_scalar(names[g])!r} of '{column}' has {int(group_rows[g])} rows "
            f"({group_rows[g] / total:.0%} of the data), more than the largest split ({largest}, "
            f"{shares[largest]:.0%}) can hold; change the shares or the entity column"
        )


def assign_groups(group_rows, order, shares: dict[str, float]):
    """Give whole groups (taken in ``order``) to splits so row counts follow the shares."""
    import numpy as np

    total = int(group_rows.sum())
    sizes = group_rows[order]
    ends = np.cumsum(sizes)
    mids = (ends - sizes / 2) / total
    cuts = np.cumsum([shares[s] for s in SPLITS])
    which = np.searchsorted(cuts, mids, side="right").clip(0, 2)
    group_split = np.empty(len(group_rows), dtype=object)
    group_split[order] = np.array(SPLITS, dtype=object)[which]
    return group_split


@attrs.frozen(kw_only=True)
class GroupSplit(DeclaredSplit):
    """Whole entities (``entity_column``) shuffled with ``seed``; no entity is in two splits."""

    name: ClassVar[str] = "group"

    def assign(self, frame, *, context=None):
        import numpy as np
        import pandas as pd

        column = require_column(frame, self.entity_column, "entity_column", self.name)
        codes, uniques = group_codes(frame, column, self.name)
        group_rows = np.bincount(codes, minlength=len(uniques))
        check_group_sizes(group_rows, self.shares, uniques, self.name, column)
        order = np.random.default_rng(self.seed).permutation(len(uniques))
        labels = assign_groups(group_rows, order, self.shares)[codes]
        check_nonempty(labels, self.shares, self.name, f"too few entities in '{column}'")
        return pd.Series(labels, index=frame.index, dtype=object)


@attrs.frozen(kw_only=True)
class StratifiedGroupSplit(DeclaredSplit):
    """Whole entities, with the label's class balance kept per split (sklearn ``StratifiedGroupKFold``).

    The test split is one fold of ``round(1 / test)`` folds, the validation split one fold of
    the rest, so the shares are met approximately.
    """

    name: ClassVar[str] = "stratified_group"
    stratify: str | None = None

    def assign(self, frame, *, context=None):
        import numpy as np
        import pandas as pd

        column = require_column(frame, self.entity_column, "entity_column", self.name)
        strat_col = require_column(frame, self.stratify or self.label, "stratify", self.name)
        codes, uniques = group_codes(frame, column, self.name)
        check_group_sizes(np.bincount(codes, minlength=len(uniques)), self.shares, uniques, self.name, column)
        check_stratify_classes(frame[strat_col], strat_col, self.name)
        labels = self._fold_labels(pd.factorize(frame[strat_col])[0], codes)
        check_nonempty(labels, self.shares, self.name, f"too few entities in '{column}'")
        return pd.Series(labels, index=frame.index, dtype=object)

    def _fold_labels(self, y, codes):
        """Take the test fold, then the validation fold of the rest, with ``StratifiedGroupKFold``."""
        import numpy as np
        from sklearn.model_selection import StratifiedGroupKFold

        labels = np.full(len(y), "train", dtype=object)
        rest = np.arange(len(y))
        for name, share, remaining in (("test", self.test, 1.0), ("validation", self.validation, 1.0 - self.test)):
            if share <= 0:
                continue
            folds = max(2, round(remaining / share))
            try:
                splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=self.seed)
                _, held = next(splitter.split(rest, y[rest], codes[rest]))
            except ValueError as exc:
                raise DataError(f"{self.name} split: {exc}") from None
            labels[rest[held]] = name
            rest = np.delete(rest, held)
        return labels
