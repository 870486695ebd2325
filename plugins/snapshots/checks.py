"""Checking the columns a snapshot declares: the time column and the key columns."""

from __future__ import annotations

from collections.abc import Iterable

from tether.errors import DataError, did_you_mean


def check_columns(schema, time_column: str | None, key: Iterable[str], what: str) -> None:
    """The declared time column exists and holds dates or timestamps; key columns exist."""
    import pyarrow as pa

    names = schema.names
    if time_column:
        if time_column not in names:
            raise DataError(f"{what}: time column '{time_column}' is not a column"
                            f"{did_you_mean(time_column, names)} (columns: {', '.join(names)})")
        t = schema.field(time_column).type
        if not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
            raise DataError(f"{what}: time column '{time_column}' has type {t}, not a date or timestamp; "
                            "convert it before snapshotting")
    for k in key:
        if k not in names:
            raise DataError(f"{what}: key column '{k}' is not a column{did_you_mean(k, names)} "
                            f"(columns: {', '.join(names)})")
