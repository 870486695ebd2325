"""Input checks shared by every reader: column names, declared columns, error messages."""

from __future__ import annotations

from collections.abc import Iterable

from tether.errors import DataError, did_you_mean


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library messages can run to pages)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_names(names: list[str], what: str) -> None:
    """Raise DataError if a column name appears twice."""
    seen, dupes = set(), []
    for name in names:
        if name in seen and name not in dupes:
            dupes.append(name)
        seen.add(name)
    if dupes:
        raise DataError(f"{what} has duplicate column names: {', '.join(map(repr, dupes))}; rename them")


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
