"""Row-level random strategies: ``random`` (optionally stratified) and ``stratified``."""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether.errors import ConfigError, DataError
from tether.plugins.rows import SPLITS

from .base import DeclaredSplit, check_stratify_classes, counts_from_shares, require_column


def labels_from_order(order, shares: dict[str, float]):
    """Label rows taken in ``order`` (positions) by cumulative shares."""
    import numpy as np

    n = len(order)
    counts = counts_from_shares(n, shares)
    labels = np.empty(n, dtype=object)
    start = 0
    for name in SPLITS:
        labels[order[start:start + counts[name]]] = name
        start += counts[name]
    return labels


@attrs.frozen(kw_only=True)
class RandomSplit(DeclaredSplit):
    """Rows shuffled with ``seed`` and cut by the shares; ``stratify`` keeps a column's class balance."""

    name: ClassVar[str] = "random"
    stratify: str | None = None

    def assign(self, frame, *, context=None):
        import numpy as np
        import pandas as pd

        stratify = self._stratify_column(frame)
        if stratify is None:
            order = np.random.default_rng(self.seed).permutation(len(frame))
            return pd.Series(labels_from_order(order, self.shares), index=frame.index, dtype=object)
        check_stratify_classes(frame[stratify], stratify, self.name)
        labels = self._stratified_labels(frame[stratify].to_numpy(), stratify)
        return pd.Series(labels, index=frame.index, dtype=object)

    def _stratified_labels(self, strat, column: str):
        """Two stratified ``train_test_split`` s: held-out rows, then validation/test among them."""
        import numpy as np
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(strat))
        labels = np.full(len(strat), "train", dtype=object)
        held = self.validation + self.test
        if held == 0:
            return labels
        try:
            _, held_idx = train_test_split(idx, test_size=held, random_state=self.seed, stratify=strat)
            if self.validation and self.test:
                val_idx, test_idx = train_test_split(held_idx, test_size=self.test / held, random_state=self.seed,
                                                     stratify=strat[held_idx])
            else:
                val_idx, test_idx = (held_idx, idx[:0]) if self.validation else (idx[:0], held_idx)
        except ValueError as exc:
            raise DataError(f"{self.name} split: cannot stratify on '{column}': {exc}") from None
        labels[val_idx], labels[test_idx] = "validation", "test"
        return labels

    def _stratify_column(self, frame):
        if self.stratify is None:
            return None
        return require_column(frame, self.stratify, "stratify", self.name)


@attrs.frozen(kw_only=True)
class StratifiedSplit(RandomSplit):
    """Like ``random`` with ``stratify`` defaulting to ``label``: every split keeps the class balance."""

    name: ClassVar[str] = "stratified"

    def _stratify_column(self, frame):
        column = self.stratify or self.label
        if not column:
            raise ConfigError("stratified split: set 'stratify' or 'label' to the class column")
        return require_column(frame, column, "stratify", self.name)
