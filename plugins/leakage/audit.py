"""Auditing a split made elsewhere: read a data file whose split is a column, and check it."""

from __future__ import annotations

from tether.errors import DataError
from tether.plugins.rows import missing_column, normalize_labels, parse_times, summarize_split
from tether.workspace import table_to_frame

from .input import LeakageInput
from .policy import run_checks


def read_data_file(path: str):
    """A CSV or Parquet file (or folder of Parquet files) as a DataFrame, read by the shared
    reader (:func:`tether.plugins.tables.read_file_table`) and converted a column at a time."""
    import pyarrow as pa
    from tether.plugins.tables import read_file_table

    tables = [read_file_table(path)]  # the list is the only reference: see table_to_frame
    pa.default_memory_pool().release_unused()  # the reader's decoding buffers
    return table_to_frame(tables)


def _check_columns(frame, roles: dict[str, str | None], ignore_columns=()) -> None:
    for role, col in roles.items():
        if col and col not in frame.columns:
            raise missing_column(col, frame.columns, what=f"leakage: {role} column")
    for col in ignore_columns:
        if col not in frame.columns:
            raise missing_column(col, frame.columns, what="leakage: ignored column")


def audit_frame(frame, *, split_column: str, entity_column=None, time_column=None, label=None, catalogue=(),
                ignore_columns=(), policy=None, host=None):
    """Run the leakage checks on a frame whose split is a column; returns (findings, summary)."""
    _check_columns(frame, {"split": split_column, "entity": entity_column, "time": time_column, "label": label},
                   ignore_columns)
    if not len(frame):
        raise DataError("leakage: the data holds no rows; there is nothing to check")
    splits = normalize_labels(frame[split_column], where="leakage", column=split_column)
    if not any((splits == name).any() for name in ("train", "validation", "test")):
        raise DataError(f"leakage: no rows are in train, validation or test ({len(splits)} excluded); "
                        f"there is nothing to check")
    data_frame = frame.drop(columns=[split_column])
    if entity_column and data_frame[entity_column].isna().any():
        raise DataError(f"leakage: entity column '{entity_column}' has {int(data_frame[entity_column].isna().sum())} "
                        f"null values; fill or drop them")
    if time_column:
        parse_times(data_frame[time_column], time_column, where="leakage")
    data = LeakageInput(frame=data_frame, splits=splits, entity_column=entity_column, time_column=time_column,
                        label=label, catalogue=tuple(catalogue), ignore_columns=tuple(ignore_columns))
    findings = run_checks(data, policy, host=host)
    summary = summarize_split(data_frame, splits, entity_column=entity_column, time_column=time_column, label=label)
    return findings, summary
