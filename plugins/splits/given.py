"""Splits decided outside tether: ``column`` (read from a column) and ``custom`` (a user function)."""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether.errors import DataError
from tether.plugins.rows import normalize_labels

from .base import DeclaredSplit, require_column


@attrs.frozen(kw_only=True)
class ColumnSplit(DeclaredSplit):
    """A split made elsewhere: ``split_column`` holds each row's split name.

    The split column is added to ``ignore_columns``, so the leakage checks compare the
    rows without it.
    """

    name: ClassVar[str] = "column"
    split_column: str

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.split_column not in self.ignore_columns:
            object.__setattr__(self, "ignore_columns", (*self.ignore_columns, self.split_column))

    def assign(self, frame, *, context=None):
        import pandas as pd

        column = require_column(frame, self.split_column, "split_column", self.name)
        return pd.Series(normalize_labels(frame[column], where=f"{self.name} split", column=column),
                         index=frame.index, dtype=object)


@attrs.frozen(kw_only=True)
class CustomSplit(DeclaredSplit):
    """A user function ``module:function(frame, seed)`` returning one split name per row."""

    name: ClassVar[str] = "custom"
    function: str

    def assign(self, frame, *, context=None):
        import pandas as pd
        from tether.callables import import_callable

        func = import_callable(self.function, where=f"{self.name} split: function")
        result = func(frame, seed=self.seed)
        if len(result) != len(frame):
            raise DataError(f"custom split: '{self.function}' returned {len(result)} labels for {len(frame)} rows")
        return pd.Series(normalize_labels(list(result), where="custom split", column=self.function),
                         index=frame.index, dtype=object)
