"""The snapshot stage: read a source, fingerprint its data, store it as Parquet objects.

Sources: ``csv``, ``parquet`` and ``python`` (a function returning a DataFrame).
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import attrs

from tether import hookimpl
from tether.backends import Source
from tether.errors import DataError
from tether.records import ColumnInfo, ColumnSummary, DatasetCard, DatasetSnapshot


@attrs.frozen(kw_only=True)
class CardFields:
    """Declared dataset-card fields, accepted by every source under ``card:``."""

    description: str = ""
    owner: str = ""


@attrs.frozen(kw_only=True)
class CsvSource(Source):
    name: ClassVar[str] = "csv"
    path: str
    dataset: str = ""
    time_column: str | None = None
    key: tuple[str, ...] = ()

    def read(self, *, context):
        import pyarrow.csv as pacsv

        path = context.resolve_path(self.path)
        if not path.is_file():
            raise DataError(f"source file '{path}' not found")
        try:
            return pacsv.read_csv(path)
        except Exception as exc:
            raise DataError(f"source file '{path}' cannot be read as CSV: {exc}") from None

    def describe(self) -> str:
        return f"csv:{self.path}"


@attrs.frozen(kw_only=True)
class ParquetSource(Source):
    name: ClassVar[str] = "parquet"
    path: str
    dataset: str = ""
    time_column: str | None = None
    key: tuple[str, ...] = ()

    def read(self, *, context):
        import pyarrow.dataset as ds

        path = context.resolve_path(self.path)
        if not path.exists():
            raise DataError(f"source '{path}' not found")
        try:
            return ds.dataset(path, format="parquet").to_table()
        except Exception as exc:
            raise DataError(f"source '{path}' cannot be read as Parquet: {exc}") from None

    def describe(self) -> str:
        return f"parquet:{self.path}"


@attrs.frozen(kw_only=True)
class PythonSource(Source):
    """Rows from a Python function ``module:function`` returning a pandas DataFrame."""

    name: ClassVar[str] = "python"
    function: str
    dataset: str = ""
    time_column: str | None = None
    key: tuple[str, ...] = ()
    kwargs: dict[str, Any] = attrs.field(factory=dict)

    def read(self, *, context):
        import pandas as pd
        import pyarrow as pa

        module_name, _, func_name = self.function.partition(":")
        try:
            func = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as exc:
            raise DataError(f"source function '{self.function}' cannot be imported: {exc}") from None
        frame = func(**self.kwargs)
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"source function '{self.function}' returned {type(frame).__name__}, not a DataFrame")
        return pa.Table.from_pandas(frame, preserve_index=False)

    def describe(self) -> str:
        return f"python:{self.function}"


def fingerprint_table(table) -> str:
    """XXH3-128 over the schema and every column's values in order."""
    import pyarrow as pa
    import xxhash

    hasher = xxhash.xxh3_128()
    hasher.update(str(table.schema.remove_metadata()).encode())
    for batch in table.combine_chunks().to_batches():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema.remove_metadata()) as writer:
            writer.write_batch(batch)
        hasher.update(sink.getvalue())
    return "xxh3_128:" + hasher.hexdigest()


def summarize(table) -> tuple[ColumnSummary, ...]:
    import pyarrow.compute as pc

    out = []
    for name, column in zip(table.column_names, table.columns):
        n = len(column)
        missing = column.null_count / n if n else 0.0
        kwargs: dict[str, Any] = {}
        try:
            mm = pc.min_max(column)
            kwargs["min"], kwargs["max"] = mm["min"].as_py(), mm["max"].as_py()
        except Exception:
            pass
        out.append(ColumnSummary(name=name, type=str(column.type), missing_share=round(missing, 6),
                                 distinct=pc.count_distinct(column).as_py(), **kwargs))
    return tuple(out)


def take_snapshot(table, *, name: str, source: str, workspace, time_column=None, key=()) -> DatasetSnapshot:
    """Fingerprint ``table``, store it and return its record (not yet in the metadata store)."""
    import pyarrow.compute as pc

    if table.num_rows == 0:
        raise DataError(f"dataset '{name}' from {source} has no rows")
    if time_column and time_column not in table.column_names:
        raise DataError(f"time column '{time_column}' is not in dataset '{name}' (columns: {', '.join(table.column_names)})")
    fingerprint = fingerprint_table(table)
    ref = workspace.put_frame(table)
    time_range = None
    if time_column:
        mm = pc.min_max(table[time_column])
        time_range = (mm["min"].as_py(), mm["max"].as_py())
    card = DatasetCard(num_rows=table.num_rows, num_columns=table.num_columns, time_range=time_range,
                       columns=summarize(table))
    return DatasetSnapshot(
        id="snap-" + fingerprint.split(":")[1][:20], name=name, fingerprint=fingerprint, num_rows=table.num_rows,
        columns=tuple(ColumnInfo(name=f.name, type=str(f.type), nullable=f.nullable) for f in table.schema),
        objects=(ref,), source=source, time_column=time_column, key_columns=tuple(key), card=card,
    )


@hookimpl(trylast=True)
def tether_snapshot(stage, context):
    source = context.backend(stage)
    table = source.read(context=context)
    return take_snapshot(table, name=source.dataset or stage.id, source=source.describe(),
                         workspace=context.workspace, time_column=source.time_column, key=source.key)


@hookimpl
def tether_add_backends(backends):
    backends.add(CsvSource)
    backends.add(ParquetSource)
    backends.add(PythonSource)
