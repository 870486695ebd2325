"""Reading the user's data files: the one CSV and Parquet reader every command uses.

A CSV field is missing (null) when it is empty or one of :data:`CSV_NULL_VALUES`, in text
columns as in numeric ones, so a table written as CSV and as Parquet reads the same (and
snapshots to the same id). Parquet files and partitioned (hive) folders are read in path
order, one row group at a time, never whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import DataError

#: CSV fields read as missing: an empty field, and the spellings of "not available" that
#: spreadsheets and pandas write (``NA``, ``N/A``, ``NaN``, ``null``, ``NULL``, ``None``).
CSV_NULL_VALUES = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Parquet files are read through a buffer of this size (memory stays bounded by the batch size).
READ_BUFFER = 4 << 20


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


if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def read_csv_batches(path: Path, *, delimiter: str = ",", block_size: int = 16 << 20) -> Iterator[pa.RecordBatch]:
    """Stream a CSV file in blocks of ``block_size`` bytes (types inferred from the first
    block); an empty field or one of :data:`CSV_NULL_VALUES` is missing, in text columns too."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.is_file():
        raise DataError(f"source file '{path}' not found" if not path.exists() else f"source '{path}' is not a file")
    if path.stat().st_size == 0:
        raise DataError(f"source file '{path}' is empty")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise DataError(f"CSV delimiter must be one character, got {delimiter!r}")
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=block_size),
                                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                                convert_options=pacsv.ConvertOptions(null_values=list(CSV_NULL_VALUES),
                                                                     strings_can_be_null=True))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"source file '{path}' cannot be read as CSV: {first_line(exc)}") from None
    check_names(reader.schema.names, f"source file '{path}'")
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            message = first_line(exc)
            if "conversion error" in message:
                raise DataError(f"source file '{path}' has a column of mixed types: {message}; "
                                "fix the file or read it as a string column") from None
            raise DataError(f"source file '{path}' cannot be read as CSV: {message}") from None
        yield batch


def read_parquet_batches(path: Path, *, batch_rows: int = 128 * 1024,
                         columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a Parquet file or folder in path order, never loading it whole."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    dataset = _open_dataset(Path(path))
    # Pull-based, one row group at a time, files in path order. (A dataset scanner reads
    # ahead without bound when its consumer is slower than the disk, as a writer is.)
    schema = dataset.schema if columns is None else pa.schema([dataset.schema.field(c) for c in columns])
    fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
    for fragment in fragments:
        keys = ds.get_partition_keys(fragment.partition_expression) if fragment.partition_expression is not None else {}
        try:
            # buffered, not pre-buffered: pre-buffering holds a whole row group (of any size) in memory
            with pq.ParquetFile(fragment.path, pre_buffer=False, buffer_size=READ_BUFFER) as pf:
                file_columns = [n for n in schema.names if n in pf.schema_arrow.names]
                for batch in pf.iter_batches(batch_size=batch_rows, columns=file_columns, use_pandas_metadata=False):
                    if batch.num_rows:
                        yield _conform_batch(batch, schema, keys, fragment.path, dataset.files[0])
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"source '{fragment.path}' cannot be read as Parquet: {first_line(exc)}") from None


def _open_dataset(path: Path):
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not path.exists():
        raise DataError(f"source '{path}' not found")
    try:
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"source '{path}' cannot be read as Parquet: {first_line(exc)}") from None
    if not dataset.files:
        raise DataError(f"source folder '{path}' holds no Parquet files")
    check_names(dataset.schema.names, f"source '{path}'")
    return dataset


def _check_zone(name: str, have, want, where: str, origin: str) -> None:
    """Timestamps with a time zone and without one do not mix: a cast would invent or drop
    the zone. (Zone-aware values in another zone are the same instants and convert.)"""
    import pyarrow as pa

    if pa.types.is_timestamp(have) and pa.types.is_timestamp(want) and (have.tz is None) != (want.tz is None):
        def kind(t):
            return f"time zone {t.tz}" if t.tz else "no time zone"

        raise DataError(f"source '{where}': column '{name}' has timestamps with {kind(have)}, but '{origin}' "
                        f"has {kind(want)}; write every file of the folder the same way")


def _conform_batch(batch, schema, partition_keys: dict, where: str, origin: str = ""):
    """A file's batch in the dataset's schema: partition columns added, missing ones null."""
    import pyarrow as pa

    arrays = []
    for field in schema:
        if field.name in batch.schema.names:
            array = batch.column(field.name)
            _check_zone(field.name, array.type, field.type, where, origin)
            if array.type != field.type:
                try:
                    array = array.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise DataError(f"source '{where}': column '{field.name}' has type {array.type}, other files "
                                    f"have {field.type} ({first_line(exc)})") from None
        elif field.name in partition_keys:
            array = pa.array([partition_keys[field.name]] * batch.num_rows, type=field.type)
        else:
            array = pa.nulls(batch.num_rows, type=field.type)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def iter_file_batches(path: str | Path, *, batch_rows: int = 128 * 1024) -> Iterator[pa.RecordBatch]:
    """A CSV file (``.tsv`` tab-separated), a Parquet file or a folder of Parquet files as
    record batches; errors name the file. A file with a header but no rows gives one empty
    batch, so its columns are still known."""
    import pyarrow as pa

    path = Path(path)
    if not path.exists():
        raise DataError(f"file '{path}' not found")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in PARQUET_SUFFIXES:
        batches = read_parquet_batches(path, batch_rows=batch_rows)
    elif suffix in CSV_SUFFIXES:
        batches = read_csv_batches(path, delimiter="\t" if suffix == ".tsv" else ",")
    else:
        raise DataError(f"file '{path}': unknown format; use a .csv, .tsv or .parquet file (or a Parquet folder)")
    schema = None
    for batch in batches:
        schema = batch.schema
        yield batch
    if schema is None:
        yield pa.RecordBatch.from_pylist([], schema=_file_schema(path))


def _file_schema(path: Path):
    """The columns of a CSV/Parquet file that holds no rows."""
    import pyarrow.csv as pacsv

    if path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES:
        return _open_dataset(path).schema
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    return pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter)).schema


def read_file_table(path: str | Path, *, columns: list[str] | None = None) -> pa.Table:
    """A whole CSV/Parquet file (or Parquet folder) as one Arrow table (see
    :func:`iter_file_batches`); a file with no rows gives an empty table with its columns."""
    import pyarrow as pa

    table = pa.Table.from_batches(list(iter_file_batches(path)))
    return table.select(columns) if columns is not None else table
