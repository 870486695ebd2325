"""Any input as a stream of Arrow pieces of bounded size, in the types Parquet keeps.

Inputs are DataFrames, Arrow tables or batches, iterables of those, or CSV/Parquet paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import DataError
from tether.plugins.tables import check_names, first_line, read_csv_batches, read_parquet_batches

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

#: A piece (unit of writing and hashing, one Parquet row group) holds at most this many rows;
#: pieces assembled from streamed batches also at most ``PIECE_BYTES`` (a table already in
#: memory is sliced without copying, so only the row cap applies to it).
PIECE_ROWS = 1 << 20
PIECE_BYTES = 64 << 20


def storable_type(t):
    """The type a value keeps through a Parquet round trip (Parquet has no second-resolution
    timestamps or times and stores date64 as date32); snapshots hold data in this form, so
    what is read back is exactly what was fingerprinted."""
    import pyarrow as pa

    if pa.types.is_timestamp(t) and t.unit == "s":
        return pa.timestamp("ms", tz=t.tz)
    if pa.types.is_time32(t) and t.unit == "s":
        return pa.time32("ms")
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_dictionary(t):
        return pa.dictionary(t.index_type, storable_type(t.value_type), t.ordered)
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(storable_type(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(storable_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(storable_type(f.type)) for f in t])
    return t


def storable_schema(schema):
    """``schema`` with every type replaced by its :func:`storable_type`."""
    import pyarrow as pa

    return pa.schema([f.with_type(storable_type(f.type)) for f in schema], metadata=schema.metadata)


def from_pandas(frame: pd.DataFrame, what: str) -> pa.Table:
    """A DataFrame as an Arrow table (index dropped); unstorable columns are a DataError."""
    import pyarrow as pa

    check_names([str(c) for c in frame.columns], what)
    if not all(isinstance(c, str) for c in frame.columns):
        raise DataError(f"{what} has non-string column names ({list(frame.columns)[:5]}); rename them")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        message = first_line(exc)
        column = message.split("column ")[-1].split(" ")[0] if "column " in message else "?"
        raise DataError(f"{what}: column {column} cannot be stored ({message}); "
                        "give it one type (e.g. .astype(str))") from None


def iter_input(data: Any, *, what: str, context=None) -> Iterator[Any]:
    """Arrow tables or batches from whatever a source returned (or ``create_snapshot`` got)."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(data, pd.DataFrame):
        yield from_pandas(data, what)
    elif isinstance(data, (pa.Table, pa.RecordBatch)):
        check_names(data.schema.names, what)
        yield data
    elif isinstance(data, (str, os.PathLike)):
        yield from _read_path(Path(data) if context is None else context.resolve_path(data))
    elif isinstance(data, Iterable) and not isinstance(data, (bytes, dict)):
        for i, item in enumerate(data):
            if isinstance(item, pd.DataFrame):
                item = from_pandas(item, f"{what} (item {i})")
            if not isinstance(item, (pa.Table, pa.RecordBatch)):
                raise DataError(f"{what}: item {i} is a {type(item).__name__}; yield DataFrames, "
                                "Arrow tables or record batches")
            yield item
    else:
        raise DataError(f"{what} returned a {type(data).__name__}; return a DataFrame, an Arrow table, "
                        "record batches or a file path")


def _read_path(path: Path) -> Iterator[pa.RecordBatch]:
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        yield from read_parquet_batches(path)
    elif path.suffix.lower() in (".csv", ".tsv", ".txt", ".gz"):
        yield from read_csv_batches(path, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    elif not path.exists():
        raise DataError(f"source '{path}' not found")
    else:
        raise DataError(f"source '{path}': unknown format; use a .csv or .parquet file or a Parquet folder")


def describe_input(data) -> str:
    """The card's ``source`` for data given from Python: ``csv:PATH``, ``python:pandas.DataFrame``..."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        kind = "parquet" if path.is_dir() or path.suffix.lower() in (".parquet", ".pq") else "csv"
        return f"{kind}:{path}"
    module = type(data).__module__.split(".")[0]
    return f"python:{module}.{type(data).__name__}"


def iter_pieces(items: Iterable[Any], *, max_rows: int | None = None, max_bytes: int | None = None):
    """Regroup tables/batches into tables of bounded size without copying large inputs."""
    import pyarrow as pa

    max_rows = max_rows or PIECE_ROWS
    max_bytes = max_bytes or PIECE_BYTES
    held: list[pa.RecordBatch] = []
    held_rows = held_bytes = 0
    for item in items:
        if isinstance(item, pa.Table):
            if held:
                yield pa.Table.from_batches(held)
                held, held_rows, held_bytes = [], 0, 0
            # a table is already in memory and slices are zero-copy: only the row cap applies
            for start in range(0, item.num_rows, max_rows):
                yield item.slice(start, max_rows)
            if item.num_rows == 0:
                yield item
            continue
        held.append(item)
        held_rows += item.num_rows
        held_bytes += item.nbytes
        if held_rows >= max_rows or held_bytes >= max_bytes:
            yield pa.Table.from_batches(held)
            held, held_rows, held_bytes = [], 0, 0
    if held:
        yield pa.Table.from_batches(held)
