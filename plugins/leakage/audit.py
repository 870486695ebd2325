"""Auditing a split made elsewhere: read a data file whose split is a column, and check it."""

from __future__ import annotations

from tether.errors import DataError
from tether.plugins.rows import normalize_labels, parse_times, summarize_split

from .input import LeakageInput
from .policy import run_checks


def read_data_file(path: str):
    """A CSV or Parquet file (or folder of Parquet files) as a DataFrame."""
    from pathlib import Path

    import pyarrow

    p = Path(path)
    if not p.exists():
        raise DataError(f"data file '{path}' not found")
    try:
        if p.is_dir() or p.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.dataset as ds

            return ds.dataset(p, format="parquet").to_table().to_pandas()
        if p.suffix.lower() in (".csv", ".txt", ".gz"):
            import pyarrow.csv as pacsv

            return pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)).to_pandas()
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise DataError(f"data file '{path}' cannot be read: {str(exc).splitlines()[0]}") from None
    raise DataError(f"data file '{path}': unknown format; use a .csv or .parquet file")


def _check_columns(frame, roles: dict[str, str | None]) -> None:
    for role, col in roles.items():
        if col and col not in frame.columns:
            raise DataError(
                f"leakage: {role} column '{col}' is not in the data (columns: {', '.join(map(str, frame.columns))})"
            )


def audit_frame(frame, *, split_column: str, entity_column=None, time_column=None, label=None, catalogue=(),
                ignore_columns=(), policy=None, host=None):
    """Run the leakage checks on a frame whose split is a column; returns (findings, summary)."""
    _check_columns(frame, {"split": split_column, "entity": entity_column, "time": time_column, "label": label})
    splits = normalize_labels(frame[split_column], where="leakage", column=split_column)
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
