"""The snapshot stage: read a source, fingerprint its data, store it as immutable Parquet objects.

Sources (``plugin:`` in a chain): ``csv``, ``parquet`` (a file or a partitioned folder),
``python`` (a function returning a DataFrame, a Table or record batches) and ``sql`` (a
query against SQLite or PostgreSQL). From Python, :func:`create_snapshot` also takes a
DataFrame, an Arrow table, record batches or a path.

Data flows through in pieces of bounded size: each piece is written to a temporary Parquet
part in storage by the main thread while a worker thread fingerprints and summarizes the
previous piece. When the source is exhausted the parts are committed as content-addressed
objects and only then is the record written, so a snapshot is visible whole or not at all.
The fingerprint scheme is documented in ``docs/snapshots.md``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator

import attrs

from tether import hookimpl
from tether.backends import Source
from tether.errors import (
    ConfigError,
    DataError,
    IntegrityError,
    NotFoundError,
    StoreError,
    did_you_mean,
)
from tether.log import get_logger
from tether.plugins.local_storage import fsync_path
from tether.records import ColumnInfo, ColumnSummary, DatasetCard, DatasetSnapshot, ObjectRef

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

    from tether.workspace import Workspace

#: Version tag mixed into every fingerprint; bump it if the canonical form ever changes.
FINGERPRINT_SCHEME = "tether-fingerprint/1"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
#: A piece (unit of writing and hashing, one Parquet row group) holds at most this many rows;
#: pieces assembled from streamed batches also at most ``PIECE_BYTES`` (a table already in
#: memory is sliced without copying, so only the row cap applies to it).
PIECE_ROWS = 1 << 20
PIECE_BYTES = 128 << 20
#: A Parquet part (one stored object) is closed once it holds this many bytes of Arrow data.
PART_BYTES = 512 << 20
#: Distinct values tracked per text column for the card's top categories.
MAX_TRACKED_DISTINCT = 10_000
TOP_N = 5

#: Dataset-card fields a user declares (``card:`` in a chain, ``card=`` in Python);
#: everything else on the card is computed from the data.
CARD_FIELDS: dict[str, type] = {
    "description": str,
    "version": str,
    "owner": str,
    "source_systems": tuple,
    "selection": str,
    "filters": tuple,
    "exclusions": tuple,
    "label_definition": str,
    "preprocessing": tuple,
    "limitations": tuple,
    "synthetic": bool,
}


def declared_card(fields: dict[str, Any] | None, *, where: str = "card") -> dict[str, Any]:
    """Validate declared card fields; lists become tuples. Unknown keys are a ConfigError."""
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise ConfigError(f"{where}: expected a mapping of card fields, got {type(fields).__name__}")
    out: dict[str, Any] = {}
    for key, value in fields.items():
        kind = CARD_FIELDS.get(key)
        if kind is None:
            raise ConfigError(
                f"{where}: unknown card field '{key}'{did_you_mean(str(key), CARD_FIELDS)} "
                f"(declared fields: {', '.join(CARD_FIELDS)}; counts, schema and statistics are computed)"
            )
        if kind is tuple:
            if isinstance(value, str):
                value = (value,)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.{key}: expected a list of strings, got {value!r}")
            value = tuple(value)
        elif kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
        elif not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
        out[key] = value
    return out


def _check_card(instance, attribute, value) -> None:
    declared_card(value, where="card")


# --- sources ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _DatasetParams:
    """Parameters every source accepts."""

    dataset: str = ""  # the dataset's name; defaults to the stage id
    time_column: str | None = None
    key: tuple[str, ...] = ()
    card: dict[str, Any] = attrs.field(factory=dict, validator=_check_card)


@attrs.frozen(kw_only=True)
class CsvSource(_DatasetParams, Source):
    """A CSV file, read in blocks (types inferred from the first block)."""

    name: ClassVar[str] = "csv"
    path: str
    delimiter: str = ","
    block_size: int = 16 << 20

    def preflight(self, *, context) -> None:
        path = context.resolve_path(self.path)
        if not path.is_file():
            raise DataError(f"source file '{path}' not found")

    def read(self, *, context) -> Iterator[pa.RecordBatch]:
        return read_csv_batches(context.resolve_path(self.path), delimiter=self.delimiter,
                                block_size=self.block_size)

    def describe(self) -> str:
        return f"csv:{self.path}"


@attrs.frozen(kw_only=True)
class ParquetSource(_DatasetParams, Source):
    """A Parquet file or a folder of them (hive partitions allowed), streamed in batches."""

    name: ClassVar[str] = "parquet"
    path: str
    batch_rows: int = 128 * 1024

    def preflight(self, *, context) -> None:
        path = context.resolve_path(self.path)
        if not path.exists():
            raise DataError(f"source '{path}' not found")

    def read(self, *, context) -> Iterator[pa.RecordBatch]:
        return read_parquet_batches(context.resolve_path(self.path), batch_rows=self.batch_rows)

    def describe(self) -> str:
        return f"parquet:{self.path}"


@attrs.frozen(kw_only=True)
class PythonSource(_DatasetParams, Source):
    """Rows from ``module:function``, which returns a DataFrame, an Arrow table or batches."""

    name: ClassVar[str] = "python"
    function: str
    kwargs: dict[str, Any] = attrs.field(factory=dict)

    def read(self, *, context):
        module_name, _, func_name = self.function.partition(":")
        try:
            func = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as exc:
            raise DataError(f"source function '{self.function}' cannot be imported: {exc}") from None
        return func(**self.kwargs)

    def describe(self) -> str:
        return f"python:{self.function}"


@attrs.frozen(kw_only=True)
class SqlSource(_DatasetParams, Source):
    """The rows of ``query`` against ``url``: a SQLite file (``path`` or ``sqlite:///path``)
    or a PostgreSQL DSN (``postgresql://...``, needs the ``postgres`` extra). Rows are
    fetched in batches through a server-side cursor; column types are inferred from the
    first rows that have values. Write the DSN as ``${ENV_VAR}``: it is never printed."""

    name: ClassVar[str] = "sql"
    requires: ClassVar[tuple[str, ...]] = ()  # sqlite needs nothing; postgres checks psycopg on use
    extra: ClassVar[str | None] = "postgres"
    url: str
    query: str
    batch_rows: int = 50_000

    def is_postgres(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))

    def preflight(self, *, context) -> None:
        if self.is_postgres():
            if importlib.util.find_spec("psycopg") is None:
                raise ConfigError("sql source: PostgreSQL needs psycopg: pip install 'tether[postgres]'")
            return
        path = _sqlite_path(self.url, context)
        if not path.is_file():
            raise DataError(f"sql source: SQLite database '{path}' not found")

    def read(self, *, context) -> Iterator[pa.RecordBatch]:
        if self.is_postgres():
            return _read_postgres(self.url.replace("postgresql+psycopg://", "postgresql://"), self.query,
                                  self.batch_rows)
        return _read_sqlite(_sqlite_path(self.url, context), self.query, self.batch_rows)

    def describe(self) -> str:
        if self.is_postgres():
            from urllib.parse import urlsplit

            parts = urlsplit(self.url)
            host = parts.hostname or "localhost"
            return f"sql:postgresql://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
        return f"sql:sqlite:{self.url.removeprefix('sqlite:///')}"


def _sqlite_path(url: str, context) -> Path:
    raw = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return context.resolve_path(raw) if context is not None else Path(raw)


def _rows_to_batches(cursor, fetch, batch_rows: int, what: str, types=None,
                     converters=None) -> Iterator[pa.RecordBatch]:
    """Turn DB-API rows into record batches with one schema: the declared ``types`` where
    known, else inferred from the first values."""
    import pyarrow as pa

    names = [d[0] for d in cursor.description or []]
    types = types or [None] * len(names)
    converters = converters or [None] * len(names)
    if not names:
        raise DataError(f"{what}: the query returned no columns")
    schema: pa.Schema | None = None
    held: list[pa.RecordBatch] = []  # batches before every column's type is known

    def to_batch(rows) -> pa.RecordBatch:
        columns = list(zip(*rows)) if rows else [[] for _ in names]
        arrays = []
        for name, values, type_, convert in zip(names, columns, types, converters):
            if convert is not None:
                values = [None if v is None else convert(v) for v in values]
            try:
                arrays.append(pa.array(values, type=type_))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise DataError(f"{what}: column '{name}' has values of mixed types ({_first_line(exc)}); "
                                "cast it in the query") from None
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def conform(batch: pa.RecordBatch) -> pa.RecordBatch:
        try:
            return batch.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            bad = next((f.name for f, t in zip(schema, batch.schema.types) if f.type != t), names[0])
            raise DataError(f"{what}: column '{bad}' has values of mixed types ({_first_line(exc)}); "
                            "cast it in the query") from None

    while True:
        rows = fetch(batch_rows)
        if not rows:
            break
        batch = to_batch(rows)
        if schema is None:
            held.append(batch)
            inferred = _unify([b.schema for b in held], what).types
            if all(not pa.types.is_null(t) for t in inferred) or sum(b.num_rows for b in held) > 1_000_000:
                schema = pa.schema([pa.field(n, t) for n, t in zip(names, inferred)])
                for b in held:
                    yield conform(b)
                held = []
            continue
        yield conform(batch)
    if held:
        schema = _unify([b.schema for b in held], what)
        for b in held:
            yield conform(b)
    elif schema is None:
        yield to_batch([])


def _unify(schemas, what: str):
    import pyarrow as pa

    if len(schemas) == 1:
        return schemas[0]
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{what}: a column has values of mixed types ({_first_line(exc)}); cast it in the query") from None


def _read_sqlite(path: Path, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    import sqlite3

    if not path.is_file():
        raise DataError(f"sql source: SQLite database '{path}' not found")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DataError(f"sql source: SQLite database '{path}' cannot be opened: {exc}") from None
    try:
        try:
            cursor = conn.execute(query)
        except sqlite3.Error as exc:
            raise DataError(f"sql source: query failed on '{path.name}': {_first_line(exc)}") from None
        yield from _rows_to_batches(cursor, cursor.fetchmany, batch_rows, f"sql source '{path.name}'")
    except sqlite3.Error as exc:
        raise DataError(f"sql source: query failed on '{path.name}': {_first_line(exc)}") from None
    finally:
        conn.close()


def _read_postgres(url: str, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        import psycopg
    except ImportError:
        raise ConfigError("sql source: PostgreSQL needs psycopg: pip install 'tether[postgres]'") from None
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        # the message may echo connection parameters; keep only its first line, no DSN
        raise DataError(f"sql source: cannot connect to PostgreSQL: {_first_line(exc)}") from None
    try:
        with conn.transaction():
            with conn.cursor(name="tether_snapshot") as cursor:  # server-side: rows arrive in batches
                try:
                    cursor.execute(query)
                    first = cursor.fetchmany(batch_rows)
                except psycopg.Error as exc:
                    raise DataError(f"sql source: query failed on PostgreSQL: {_first_line(exc)}") from None
                pending = [first]

                def fetch(n):
                    if pending:
                        return pending.pop()
                    return cursor.fetchmany(n)

                types, converters = _postgres_types(cursor.description)
                yield from _rows_to_batches(cursor, fetch, batch_rows, "sql source (PostgreSQL)", types, converters)
    except psycopg.Error as exc:
        raise DataError(f"sql source: query failed on PostgreSQL: {_first_line(exc)}") from None
    finally:
        conn.close()


def _postgres_types(description) -> tuple[list, list]:
    """Arrow types (and value converters) from PostgreSQL column type OIDs."""
    import pyarrow as pa

    fixed = {16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 700: pa.float32(),
             701: pa.float64(), 25: pa.string(), 1043: pa.string(), 1042: pa.string(), 19: pa.string(),
             17: pa.binary(), 1082: pa.date32(), 1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"),
             1083: pa.time64("us"), 1186: pa.duration("us")}
    types, converters = [], []
    for column in description:
        oid = column.type_code
        convert = None
        if oid == 1700:  # numeric(p, s); unconstrained numeric gets 38 digits, 10 after the point
            precision, scale = getattr(column, "precision", None), getattr(column, "scale", None)
            type_ = pa.decimal128(precision, scale or 0) if precision else pa.decimal128(38, 10)
        elif oid in (114, 3802):  # json, jsonb: canonical JSON text
            type_, convert = pa.string(), lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"))
        elif oid == 2950:  # uuid
            type_, convert = pa.string(), str
        else:
            type_ = fixed.get(oid)
        types.append(type_)
        converters.append(convert)
    return types, converters


def read_csv_batches(path: Path, *, delimiter: str = ",", block_size: int = 16 << 20) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.is_file():
        raise DataError(f"source file '{path}' not found" if not path.exists() else f"source '{path}' is not a file")
    if path.stat().st_size == 0:
        raise DataError(f"source file '{path}' is empty")
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=block_size),
                                parse_options=pacsv.ParseOptions(delimiter=delimiter))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"source file '{path}' cannot be read as CSV: {_first_line(exc)}") from None
    _check_names(reader.schema.names, f"source file '{path}'")
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            message = _first_line(exc)
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

    path = Path(path)
    if not path.exists():
        raise DataError(f"source '{path}' not found")
    try:
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"source '{path}' cannot be read as Parquet: {_first_line(exc)}") from None
    if not dataset.files:
        raise DataError(f"source folder '{path}' holds no Parquet files")
    _check_names(dataset.schema.names, f"source '{path}'")
    # Pull-based, one row group at a time, files in path order. (A dataset scanner reads
    # ahead without bound when its consumer is slower than the disk, as a writer is.)
    schema = dataset.schema if columns is None else pa.schema([dataset.schema.field(c) for c in columns])
    fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
    for fragment in fragments:
        keys = ds.get_partition_keys(fragment.partition_expression) if fragment.partition_expression is not None else {}
        try:
            with pq.ParquetFile(fragment.path) as pf:
                file_columns = [n for n in schema.names if n in pf.schema_arrow.names]
                for batch in pf.iter_batches(batch_size=batch_rows, columns=file_columns, use_pandas_metadata=False):
                    if batch.num_rows:
                        yield _conform_batch(batch, schema, keys, fragment.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"source '{fragment.path}' cannot be read as Parquet: {_first_line(exc)}") from None


def _conform_batch(batch, schema, partition_keys: dict, where: str):
    """A file's batch in the dataset's schema: partition columns added, missing ones null."""
    import pyarrow as pa

    arrays = []
    for field in schema:
        if field.name in batch.schema.names:
            array = batch.column(field.name)
            if array.type != field.type:
                try:
                    array = array.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise DataError(f"source '{where}': column '{field.name}' has type {array.type}, other files "
                                    f"have {field.type} ({_first_line(exc)})") from None
        elif field.name in partition_keys:
            array = pa.array([partition_keys[field.name]] * batch.num_rows, type=field.type)
        else:
            array = pa.nulls(batch.num_rows, type=field.type)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


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
    import pyarrow as pa

    return pa.schema([f.with_type(storable_type(f.type)) for f in schema], metadata=schema.metadata)


def _check_names(names: list[str], what: str) -> None:
    seen, dupes = set(), []
    for name in names:
        if name in seen and name not in dupes:
            dupes.append(name)
        seen.add(name)
    if dupes:
        raise DataError(f"{what} has duplicate column names: {', '.join(map(repr, dupes))}; rename them")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --- normalising any input to a stream of Arrow pieces -----------------------------------


def _from_pandas(frame: pd.DataFrame, what: str) -> pa.Table:
    import pyarrow as pa

    _check_names([str(c) for c in frame.columns], what)
    if not all(isinstance(c, str) for c in frame.columns):
        raise DataError(f"{what} has non-string column names ({list(frame.columns)[:5]}); rename them")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        message = _first_line(exc)
        column = message.split("column ")[-1].split(" ")[0] if "column " in message else "?"
        raise DataError(f"{what}: column {column} cannot be stored ({message}); "
                        "give it one type (e.g. .astype(str))") from None


def iter_input(data: Any, *, what: str, context=None) -> Iterator[Any]:
    """Arrow tables or batches from whatever a source returned (or ``create_snapshot`` got)."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(data, pd.DataFrame):
        yield _from_pandas(data, what)
    elif isinstance(data, (pa.Table, pa.RecordBatch)):
        _check_names(data.schema.names, what)
        yield data
    elif isinstance(data, (str, os.PathLike)):
        path = Path(data) if context is None else context.resolve_path(data)
        if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
            yield from read_parquet_batches(path)
        elif path.suffix.lower() in (".csv", ".tsv", ".txt", ".gz"):
            yield from read_csv_batches(path, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        elif not path.exists():
            raise DataError(f"source '{path}' not found")
        else:
            raise DataError(f"source '{path}': unknown format; use a .csv or .parquet file or a Parquet folder")
    elif isinstance(data, Iterable) and not isinstance(data, (bytes, dict)):
        for i, item in enumerate(data):
            if isinstance(item, pd.DataFrame):
                item = _from_pandas(item, f"{what} (item {i})")
            if not isinstance(item, (pa.Table, pa.RecordBatch)):
                raise DataError(f"{what}: item {i} is a {type(item).__name__}; yield DataFrames, "
                                "Arrow tables or record batches")
            yield item
    else:
        raise DataError(f"{what} returned a {type(data).__name__}; return a DataFrame, an Arrow table, "
                        "record batches or a file path")


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
            rows_per = max_rows
            for start in range(0, item.num_rows, rows_per):
                yield item.slice(start, rows_per)
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


# --- fingerprint ---------------------------------------------------------------------------


def canonical_type(t: pa.DataType) -> str:
    """The type as the fingerprint sees it: encodings and offset widths are not part of it."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return canonical_type(t.value_type)
    if isinstance(t, pa.ExtensionType):
        return canonical_type(t.storage_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_view(t, "string"):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is_view(t, "binary"):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or _is_view(t, "list"):
        return f"list<{canonical_type(t.value_type)}>"
    if pa.types.is_fixed_size_list(t):
        return f"list<{canonical_type(t.value_type)}>[{t.list_size}]"
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(f"{f.name}: {canonical_type(f.type)}" for f in t) + ">"
    return str(t)


def _is_view(t, family: str) -> bool:
    import pyarrow as pa

    check = {"string": "is_string_view", "binary": "is_binary_view", "list": "is_list_view"}[family]
    fn = getattr(pa.types, check, None)
    return bool(fn and fn(t)) or (family == "list" and bool(getattr(pa.types, "is_large_list_view", None)
                                                              and pa.types.is_large_list_view(t)))


class _ArrayHasher:
    """Streams one column (or nested child) into XXH3-128 hashers, chunk-independently.

    Canonical form: ``nulls`` gets the global row number (uint64 LE) of every null;
    ``values`` gets fixed-width values (null slots zeroed) as little-endian bytes, booleans
    as one byte each, and for strings/binary the concatenated bytes, with each row's byte
    length (int64 LE) in ``lengths``; lists hash their lengths and recurse into their values;
    structs recurse into their fields. Streaming XXH3 is independent of how updates are cut,
    so any chunking of the same rows gives the same digests.
    """

    def __init__(self, type_) -> None:
        import pyarrow as pa
        import xxhash

        self.type = type_
        self.rows = 0
        self.nulls = xxhash.xxh3_128()
        self.lengths = xxhash.xxh3_128()
        self.values = xxhash.xxh3_128()
        self.children: list[_ArrayHasher] = []
        t = type_
        while pa.types.is_dictionary(t) or isinstance(t, pa.ExtensionType):
            t = t.value_type if pa.types.is_dictionary(t) else t.storage_type
        self.base = t
        if pa.types.is_struct(t):
            self.children = [_ArrayHasher(f.type) for f in t]
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or _is_view(t, "list"):
            self.children = [_ArrayHasher(t.value_type)]

    #: Long arrays are fed in slices so temporary copies (null filling, lengths) stay small.
    SLICE = 1 << 20

    def update(self, arr) -> None:
        if len(arr) > self.SLICE:
            for start in range(0, len(arr), self.SLICE):
                self._update(arr.slice(start, self.SLICE))
        else:
            self._update(arr)

    def _update(self, arr) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if isinstance(arr.type, pa.ExtensionType):
            arr = arr.storage
        n = len(arr)
        t = self.base
        if n == 0:
            return
        if arr.null_count:
            idx = pc.indices_nonzero(arr.is_null())  # uint64
            if self.rows:
                idx = pc.add(idx, pa.scalar(self.rows, pa.uint64()))
            self.nulls.update(idx.buffers()[1].slice(idx.offset * 8, len(idx) * 8))
        if pa.types.is_null(t):
            pass
        elif pa.types.is_boolean(t):
            b = pc.cast(pc.fill_null(arr, False), pa.uint8()) if arr.null_count else pc.cast(arr, pa.uint8())
            self.values.update(b.buffers()[1].slice(b.offset, len(b)))
        elif _fixed_width(t):
            width = t.bit_width // 8
            view = arr.view(_uint_of(width)) if width in (1, 2, 4, 8) else arr.view(pa.binary(width))
            if arr.null_count:
                zero = pa.scalar(0, view.type) if width in (1, 2, 4, 8) else pa.scalar(b"\0" * width, view.type)
                view = pc.fill_null(view, zero)
            self.values.update(view.buffers()[1].slice(view.offset * width, len(view) * width))
        elif canonical_type(t) in ("string", "binary"):
            if _is_view(arr.type, "string"):
                arr = arr.cast(pa.large_string())
            elif _is_view(arr.type, "binary"):
                arr = arr.cast(pa.large_binary())
            if arr.null_count:
                arr = pc.fill_null(arr, "" if canonical_type(t) == "string" else b"")
            lengths = pc.cast(pc.binary_length(arr), pa.int64())
            self.lengths.update(lengths.buffers()[1].slice(lengths.offset * 8, len(lengths) * 8))
            large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
            offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if large else np.int32)
            start, end = int(offsets[arr.offset]), int(offsets[arr.offset + n])
            data = arr.buffers()[2]
            if data is not None and end > start:
                self.values.update(data.slice(start, end - start))
        elif pa.types.is_struct(t):
            for child, values in zip(self.children, arr.flatten()):
                child.update(values)
        elif self.children:  # lists
            lengths = pc.fill_null(pc.cast(pc.list_value_length(arr), pa.int64()), 0)
            self.lengths.update(lengths.buffers()[1].slice(lengths.offset * 8, len(lengths) * 8))
            self.children[0].update(arr.flatten())
        else:  # maps, unions, ...: a slow but exact textual form
            for value in arr.to_pylist():
                text = json.dumps(value, sort_keys=True, default=repr).encode()
                self.lengths.update(len(text).to_bytes(8, "little"))
                self.values.update(text)
        self.rows += n

    def digest(self) -> bytes:
        import xxhash

        h = xxhash.xxh3_128()
        h.update(canonical_type(self.type).encode())
        h.update(self.rows.to_bytes(8, "little"))
        for part in (self.nulls, self.lengths, self.values):
            h.update(part.digest())
        for child in self.children:
            h.update(child.digest())
        return h.digest()


def _fixed_width(t) -> bool:
    import pyarrow as pa

    try:
        return t.bit_width % 8 == 0 and not pa.types.is_boolean(t) and t.bit_width > 0
    except ValueError:
        return False


def _uint_of(width: int):
    import pyarrow as pa

    return {1: pa.uint8(), 2: pa.uint16(), 4: pa.uint32(), 8: pa.uint64()}[width]


class Fingerprinter:
    """The data fingerprint of a table fed in pieces (see ``docs/snapshots.md``)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns = [_ArrayHasher(f.type) for f in schema]
        self.num_rows = 0

    def update(self, piece, pool: ThreadPoolExecutor | None = None) -> None:
        """Add the next rows (a Table or RecordBatch with this schema)."""
        import pyarrow as pa

        def feed(i: int) -> None:
            column = piece.column(i)
            for chunk in (column.chunks if isinstance(column, pa.ChunkedArray) else [column]):
                self.columns[i].update(chunk)

        if pool is None:
            for i in range(len(self.columns)):
                feed(i)
        else:
            for _ in pool.map(feed, range(len(self.columns))):
                pass
        self.num_rows += piece.num_rows

    def column_digests(self) -> list[str]:
        return [c.digest().hex() for c in self.columns]

    def hexdigest(self) -> str:
        import xxhash

        h = xxhash.xxh3_128()
        header = {"scheme": FINGERPRINT_SCHEME, "rows": self.num_rows,
                  "columns": [[f.name, canonical_type(f.type)] for f in self.schema]}
        h.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
        for column in self.columns:
            h.update(column.digest())
        return h.hexdigest()


def fingerprint_table(data, *, threads: int | None = None) -> str:
    """``xxh3_128:<hex>`` of a Table, RecordBatch or DataFrame's data (schema + values in order)."""
    import pandas as pd

    table = _from_pandas(data, "data") if isinstance(data, pd.DataFrame) else data
    target = storable_schema(table.schema)
    if not target.equals(table.schema, check_metadata=False):
        table = table.cast(target)
    fp = Fingerprinter(table.schema)
    workers = threads if threads is not None else min(4, os.cpu_count() or 1)
    if workers > 1 and table.num_columns > 1:
        with ThreadPoolExecutor(workers) as pool:
            fp.update(table, pool)
    else:
        fp.update(table)
    return "xxh3_128:" + fp.hexdigest()


# --- column summaries for the card ----------------------------------------------------------


class _ColumnStats:
    def __init__(self, field) -> None:
        import pyarrow as pa

        self.field = field
        t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        self.numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        self.orderable = self.numeric or pa.types.is_temporal(t) or canonical_type(t) in ("string", "binary") \
            or pa.types.is_boolean(t)
        self.categorical = canonical_type(t) == "string" or pa.types.is_boolean(t) or pa.types.is_dictionary(field.type)
        self.rows = self.nulls = 0
        self.min = self.max = None
        self.sum = 0.0
        self.counted = 0
        self.counts: dict[Any, int] | None = {} if self.categorical else None

    def update(self, column) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.rows += len(column)
        self.nulls += column.null_count
        if len(column) == column.null_count:
            return
        if pa.types.is_dictionary(column.type) and self.orderable:
            column = column.cast(column.type.value_type)
        if self.counts is not None and pa.types.is_boolean(column.type):  # cheap: count the trues
            trues = pc.sum(column).as_py() or 0
            for value, count in ((True, trues), (False, len(column) - column.null_count - trues)):
                if count:
                    self.counts[value] = self.counts.get(value, 0) + count
                    self.min = value if self.min is None or value < self.min else self.min
                    self.max = value if self.max is None or value > self.max else self.max
            return
        if self.counts is not None:  # categories: min/max come from the distinct values
            vc = pc.value_counts(column)
            values, counts = vc.field("values").to_pylist(), vc.field("counts").to_pylist()
            for value, count in zip(values, counts):
                if value is not None:
                    self.counts[value] = self.counts.get(value, 0) + count
            if len(self.counts) > MAX_TRACKED_DISTINCT:
                self.counts = None  # high cardinality: an identifier, not a category
            else:
                present = [v for v in values if v is not None]
                if present:
                    lo, hi = min(present), max(present)
                    self.min = lo if self.min is None or _lt(lo, self.min) else self.min
                    self.max = hi if self.max is None or _lt(self.max, hi) else self.max
                return
        if self.orderable and pa.types.is_floating(column.type) and not pa.types.is_float16(column.type):
            import numpy as np  # SIMD fmin/fmax (NaN-skipping) is several times faster here

            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            for chunk in chunks:
                values = chunk.to_numpy(zero_copy_only=False)  # nulls become NaN, which fmin/fmax skip
                if len(values):
                    lo, hi = float(np.fmin.reduce(values)), float(np.fmax.reduce(values))
                    if not math.isnan(lo):
                        self.min = lo if self.min is None or lo < self.min else self.min
                        self.max = hi if self.max is None or hi > self.max else self.max
        elif self.orderable:
            try:
                mm = pc.min_max(column)
                lo, hi = mm["min"].as_py(), mm["max"].as_py()
                if lo is not None:
                    self.min = lo if self.min is None or _lt(lo, self.min) else self.min
                    self.max = hi if self.max is None or _lt(self.max, hi) else self.max
            except (pa.ArrowNotImplementedError, TypeError):
                self.orderable = False
        if self.numeric:
            total = pc.sum(column, min_count=1).as_py()
            if total is not None:
                self.sum += float(total)
                self.counted += len(column) - column.null_count

    def summary(self, fingerprint: str) -> ColumnSummary:
        top: tuple[tuple[str, int], ...] = ()
        distinct = None
        if self.counts is not None and self.categorical:
            distinct = len(self.counts)
            ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP_N]
            top = tuple((str(v), int(c)) for v, c in ranked)
        mean = self.sum / self.counted if self.numeric and self.counted else None
        if mean is not None and not math.isfinite(mean):
            mean = None
        return ColumnSummary(
            name=self.field.name, type=str(self.field.type),
            missing_share=round(self.nulls / self.rows, 6) if self.rows else 0.0,
            distinct=distinct, min=_jsonable(self.min), max=_jsonable(self.max),
            mean=round(mean, 9) if mean is not None else None, top=top, null_count=self.nulls,
            fingerprint="xxh3_128:" + fingerprint,
        )


def _lt(a, b) -> bool:
    try:
        return a < b
    except TypeError:
        return str(a) < str(b)


def _jsonable(value):
    import decimal

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value[:32].hex()
    return str(value)


# --- writing parts ---------------------------------------------------------------------------


class _PartWriter:
    """Writes pieces to temporary Parquet files in storage, one part per ``PART_BYTES``."""

    def __init__(self, storage, schema) -> None:
        self.storage = storage
        self.schema = schema
        self.parts: list[tuple[Path, int]] = []  # (temp path, rows)
        self.current: Path | None = None  # the part being written
        self._writer = None
        self._bytes = 0
        self._rows = 0

    def write(self, piece) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            path = self.storage.temp_path(".parquet")
            self.parts.append((path, 0))
            self.current = path
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self._writer.write_table(piece, row_group_size=max(piece.num_rows, 1))
        self._bytes += piece.nbytes
        self._rows += piece.num_rows
        if self._bytes >= PART_BYTES:
            self._close_part()

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.current = None
            self.parts[-1] = (self.parts[-1][0], self._rows)
            self._bytes = self._rows = 0

    def finish(self) -> list[tuple[Path, int]]:
        self._close_part()
        return self.parts

    def discard(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - already failing; the temp file is removed below
                pass
            self._writer = None
        for path, _ in self.parts:
            Path(path).unlink(missing_ok=True)


# --- taking a snapshot ---------------------------------------------------------------------


def snapshot_id(fingerprint: str) -> str:
    """The record id of the snapshot with this fingerprint."""
    return "snap-" + fingerprint.split(":", 1)[1][:24]


def take_snapshot(data, *, name: str, source: str, workspace: Workspace, time_column: str | None = None,
                  key: Iterable[str] = (), card: dict[str, Any] | None = None, context=None,
                  log=None) -> DatasetSnapshot:
    """Stream ``data`` into storage, fingerprint it and write its record; return the record.

    ``data`` is anything :func:`iter_input` accepts. If a snapshot with the same fingerprint
    exists, nothing is stored and that snapshot is returned. The record is written to the
    metadata store last, after every object is committed (see ``docs/snapshots.md``).
    """
    import pyarrow as pa

    log = log or get_logger("tether.snapshot")
    if not name or not isinstance(name, str):
        raise ConfigError("a snapshot needs a dataset name (--name / dataset: / name=)")
    declared = declared_card(card)
    key = tuple(key or ())
    storage, store = workspace.storage, workspace.store
    probe = storage.temp_path(".probe")  # fails early, before reading anything, if storage is not writable
    Path(probe).unlink(missing_ok=True)

    what = f"dataset '{name}' ({source})"
    pieces = iter_pieces(iter_input(data, what=what, context=context))
    writer: _PartWriter | None = None
    fingerprint: Fingerprinter | None = None
    stats: list[_ColumnStats] = []
    committed = False
    pool = ThreadPoolExecutor(1, thread_name_prefix="tether-fingerprint")
    try:
        pending = None
        schema = None
        for piece in pieces:
            if schema is None:
                schema = storable_schema(piece.schema)
                _check_names(schema.names, what)
                _check_columns(schema, time_column, key, what)
                writer = _PartWriter(storage, schema)
                fingerprint = Fingerprinter(schema)
                stats = [_ColumnStats(f) for f in schema]
            if not piece.schema.equals(schema, check_metadata=False):
                try:
                    piece = piece.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
                    raise DataError(f"{what}: rows {fingerprint.num_rows:,}+ have a different schema than the "
                                    f"first rows ({_first_line(exc)})") from None
            if piece.num_rows == 0:
                continue
            if pending is not None:
                pending.result()  # at most one piece is being hashed while the next is written
            pending = pool.submit(_digest_piece, fingerprint, stats, piece)
            writer.write(piece)
            if writer.current is not None:  # start writeback now, so the commit's fsync is short
                pool.submit(fsync_path, writer.current)
        if pending is not None:
            pending.result()
        if schema is None or fingerprint is None or fingerprint.num_rows == 0:
            raise DataError(f"{what} has no rows" + (f" (columns: {', '.join(schema.names)})" if schema else ""))
        parts = writer.finish()
        digest = "xxh3_128:" + fingerprint.hexdigest()
        record_id = snapshot_id(digest)
        existing = store.get(record_id, kind="snapshot")
        if existing is not None:
            writer.discard()
            committed = True
            if existing.name != name:
                log.warning("identical data already stored", snapshot=record_id, name=existing.name,
                            requested=name)
            return existing
        refs: list[ObjectRef] = []
        for path, _rows in parts:
            refs.append(storage.put_file(path, suffix=".parquet", media_type=PARQUET_MEDIA_TYPE, move=True))
        column_digests = fingerprint.column_digests()
        summaries = tuple(s.summary(d) for s, d in zip(stats, column_digests))
        time_range = _time_range(stats, schema, time_column)
        card_record = DatasetCard(
            **declared, num_rows=fingerprint.num_rows, num_columns=len(schema), time_range=time_range,
            columns=summaries, name=name, source=source, time_column=time_column, key_columns=key,
        )

        def build(version: int) -> DatasetSnapshot:
            return DatasetSnapshot(
                id=record_id, name=name, fingerprint=digest, num_rows=fingerprint.num_rows,
                columns=tuple(ColumnInfo(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema),
                objects=tuple(refs), source=source, time_column=time_column, key_columns=key, card=card_record,
                version=version, object_rows=tuple(rows for _, rows in parts), size_bytes=sum(r.size for r in refs),
            )

        put_versioned = getattr(store, "put_versioned", None)
        if callable(put_versioned):
            put_versioned(build, kind="snapshot", name=name)
        else:  # a store without version allocation: next version by lookup
            store.put(build(1 + max((r.version or 0 for r in store.find("snapshot", name=name)), default=0)))
        committed = True
        record = store.get(record_id, kind="snapshot")
        if record is None:
            raise StoreError(f"snapshot {record_id} was written but cannot be read back from the metadata store")
        return record
    finally:
        pool.shutdown(wait=True)
        if not committed and writer is not None:
            writer.discard()


def _digest_piece(fingerprint: Fingerprinter, stats: list[_ColumnStats], piece) -> None:
    fingerprint.update(piece)
    for stat, column in zip(stats, piece.columns):
        stat.update(column)


def _check_columns(schema, time_column, key, what) -> None:
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


def _time_range(stats, schema, time_column):
    if not time_column:
        return None
    stat = stats[schema.names.index(time_column)]
    lo, hi = stat.min, stat.max
    if lo is None:
        return None

    def as_dt(v):
        if isinstance(v, dt.datetime):
            return v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.timezone.utc)

    return (as_dt(lo), as_dt(hi))


# --- the Python API --------------------------------------------------------------------------


def create_snapshot(data, *, name: str, workspace: Workspace | str | os.PathLike = ".tether",
                    time_column: str | None = None, key: Iterable[str] = (), card: dict[str, Any] | None = None,
                    source: str | None = None, host=None) -> DatasetSnapshot:
    """Snapshot a DataFrame, Arrow table, record batches, or a CSV/Parquet path.

    Example::

        from tether.plugins.snapshots import create_snapshot
        snap = create_snapshot(frame, name="customers", time_column="event_ts",
                               key=["customer_id"], card={"owner": "data-team"})
        print(snap.id, snap.version)

    ``workspace`` is a :class:`~tether.workspace.Workspace` or a workspace folder. Returns the
    record, already in the metadata store; identical data returns the existing snapshot.
    """
    from tether.workspace import Workspace

    own = not isinstance(workspace, Workspace)
    if own:
        from tether.manager import PluginHost

        workspace = Workspace.open(host or PluginHost(entry_points=False), workspace)
    try:
        if source is None:
            source = _describe_input(data)
        return take_snapshot(data, name=name, source=source, workspace=workspace, time_column=time_column,
                             key=key, card=card)
    finally:
        if own:
            workspace.close()


def _describe_input(data) -> str:
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        kind = "parquet" if path.is_dir() or path.suffix.lower() in (".parquet", ".pq") else "csv"
        return f"{kind}:{path}"
    module = type(data).__module__.split(".")[0]
    return f"python:{module}.{type(data).__name__}"


def resolve_snapshot(store, ref: str) -> DatasetSnapshot:
    """A snapshot by id, unique id prefix, ``NAME@VERSION`` or ``NAME`` (its latest version)."""
    record = store.get(ref, kind="snapshot")
    if record is not None:
        return record
    name, _, version = ref.rpartition("@") if "@" in ref else (ref, "", "")
    versions = store.find("snapshot", name=name)
    if versions:
        if not version:
            return max(versions, key=lambda r: (r.version or 0, r.created_at))
        try:
            wanted = int(version.lstrip("v"))
        except ValueError:
            raise NotFoundError(f"snapshot '{ref}': version '{version}' is not a number") from None
        match = [r for r in versions if r.version == wanted]
        if match:
            return match[0]
        raise NotFoundError(f"dataset '{name}' has no version {wanted} "
                            f"(versions: {', '.join(str(r.version) for r in sorted(versions, key=_ver))})")
    if ref.startswith("snap-") and len(ref) >= 9:
        found = store.find("snapshot", prefix=ref, limit=2)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise NotFoundError(f"snapshot id prefix '{ref}' is ambiguous; give more characters")
    raise NotFoundError(f"no snapshot '{ref}' (give an id, NAME or NAME@VERSION; see `tether snapshot ls`)")


def _ver(record) -> tuple:
    return (record.version or 0, record.created_at)


# --- reading back --------------------------------------------------------------------------


def verified_part_paths(workspace: Workspace, snapshot: DatasetSnapshot) -> list[Path]:
    """Local paths of the snapshot's Parquet parts, each checked against its digest first."""
    if not snapshot.objects:
        raise IntegrityError(f"snapshot {snapshot.id} has no stored objects")
    paths = []
    storage = workspace.storage
    for ref in snapshot.objects:
        try:
            getter = getattr(storage, "verified_path", None)
            if callable(getter):
                paths.append(Path(getter(ref)))
            else:
                import tempfile

                data = storage.read_bytes(ref)
                fd, tmp = tempfile.mkstemp(suffix=".parquet")
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                paths.append(Path(tmp))
        except NotFoundError:
            raise IntegrityError(f"snapshot {snapshot.id}: object '{ref.key}' is missing from storage") from None
        except IntegrityError as exc:
            raise IntegrityError(f"snapshot {snapshot.id}: {exc}") from None
    return paths


def iter_snapshot_batches(workspace: Workspace, snapshot: DatasetSnapshot, columns: list[str] | None = None,
                          batch_rows: int = 128 * 1024) -> Iterator[pa.RecordBatch]:
    """The snapshot's rows in order, batch by batch; every object verified before it is read."""
    import pyarrow.parquet as pq

    for path in verified_part_paths(workspace, snapshot):
        with pq.ParquetFile(path) as pf:  # read, not mapped: memory stays bounded for any part size
            yield from pf.iter_batches(batch_size=batch_rows, columns=columns, use_pandas_metadata=False)


def write_snapshot(workspace: Workspace, snapshot: DatasetSnapshot, output: str | os.PathLike,
                   fmt: str | None = None) -> Path:
    """Materialise a snapshot to a Parquet or CSV file, streaming (bounded memory)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    output = Path(output)
    fmt = (fmt or output.suffix.lstrip(".") or "parquet").lower()
    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"--format: expected parquet or csv, got '{fmt}'")
    paths = verified_part_paths(workspace, snapshot)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        schema = pq.read_schema(paths[0])
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for path in paths:
                    with pq.ParquetFile(path) as pf:
                        for i in range(pf.num_row_groups):
                            writer.write_table(pf.read_row_group(i))
        else:
            with pacsv.CSVWriter(tmp, schema.remove_metadata()) as writer:
                for path in paths:
                    with pq.ParquetFile(path) as pf:
                        for batch in pf.iter_batches(batch_size=64 * 1024):
                            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns,
                                                                          schema=schema.remove_metadata()))
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return output


def recompute_fingerprint(workspace: Workspace, snapshot: DatasetSnapshot) -> str:
    """Re-read a snapshot and compute its fingerprint again (``tether verify --deep``)."""
    import pyarrow.parquet as pq

    paths = verified_part_paths(workspace, snapshot)
    fp = Fingerprinter(pq.read_schema(paths[0]))
    for batch in iter_snapshot_batches(workspace, snapshot):
        fp.update(batch)
    return "xxh3_128:" + fp.hexdigest()


# --- diff ------------------------------------------------------------------------------------


def diff_snapshots(workspace: Workspace, a: DatasetSnapshot, b: DatasetSnapshot, *, key: Iterable[str] = (),
                   samples: int = 5) -> dict[str, Any]:
    """Schema, row (by key) and summary-statistic changes from ``a`` to ``b``."""
    cols_a = {c.name: c.type for c in a.columns}
    cols_b = {c.name: c.type for c in b.columns}
    schema = {
        "added": [{"column": n, "type": t} for n, t in cols_b.items() if n not in cols_a],
        "removed": [{"column": n, "type": t} for n, t in cols_a.items() if n not in cols_b],
        "retyped": [{"column": n, "from": cols_a[n], "to": cols_b[n]} for n in cols_b
                    if n in cols_a and canonical_type_str(cols_a[n]) != canonical_type_str(cols_b[n])],
    }
    result: dict[str, Any] = {
        "a": {"id": a.id, "name": a.name, "version": a.version, "rows": a.num_rows},
        "b": {"id": b.id, "name": b.name, "version": b.version, "rows": b.num_rows},
        "identical": a.fingerprint == b.fingerprint,
        "schema": schema,
        "statistics": _stat_changes(a, b),
    }
    key = tuple(key) or b.key_columns or a.key_columns
    if not key:
        result["rows"] = {"key": [], "note": "no key declared; give --key to compare rows"}
        return result
    missing = [k for k in key if k not in cols_a or k not in cols_b]
    if missing:
        raise DataError(f"diff: key column '{missing[0]}' is not in both snapshots")
    result["rows"] = _row_changes(workspace, a, b, key, samples, cols_a, cols_b)
    return result


def canonical_type_str(type_string: str) -> str:
    return {"large_string": "string", "large_binary": "binary", "string_view": "string"}.get(type_string, type_string)


def _stat_changes(a: DatasetSnapshot, b: DatasetSnapshot) -> list[dict[str, Any]]:
    sa = {c.name: c for c in a.card.columns}
    out = []
    for cb in b.card.columns:
        ca = sa.get(cb.name)
        if ca is None:
            continue
        changes = {}
        for field in ("missing_share", "min", "max", "mean", "distinct"):
            va, vb = getattr(ca, field), getattr(cb, field)
            if va != vb:
                changes[field] = {"from": va, "to": vb}
        if tuple(ca.top) != tuple(cb.top):
            changes["top"] = {"from": [list(t) for t in ca.top], "to": [list(t) for t in cb.top]}
        if changes or (ca.fingerprint and ca.fingerprint != cb.fingerprint):
            out.append({"column": cb.name, "values_changed": bool(ca.fingerprint != cb.fingerprint), **changes})
    return out


def _row_changes(workspace, a, b, key, samples, cols_a, cols_b) -> dict[str, Any]:
    import duckdb

    from tether.plugins.pit import quote_identifier as q

    paths_a = [str(p) for p in verified_part_paths(workspace, a)]
    paths_b = [str(p) for p in verified_part_paths(workspace, b)]
    shared = [n for n in cols_b if n in cols_a and n not in key]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        con.execute(f"CREATE VIEW a AS SELECT * FROM read_parquet({paths_a!r})")
        con.execute(f"CREATE VIEW b AS SELECT * FROM read_parquet({paths_b!r})")
        keys = ", ".join(q(k) for k in key)
        for side in ("a", "b"):
            dup = con.execute(f"SELECT {keys}, COUNT(*) c FROM {side} GROUP BY ALL HAVING c > 1 LIMIT 1").fetchone()
            if dup:
                snap = a if side == "a" else b
                raise DataError(f"diff: key ({', '.join(key)}) is not unique in snapshot {snap.id} "
                                f"(e.g. {dict(zip(key, dup[:-1]))} appears {dup[-1]} times); give another --key")
        # presence flags: each side gets a marker column, so keys that are NULL still count
        con.execute("CREATE VIEW a2 AS SELECT *, TRUE AS __in_a FROM a")
        con.execute("CREATE VIEW b2 AS SELECT *, TRUE AS __in_b FROM b")
        on2 = " AND ".join(f"a2.{q(k)} IS NOT DISTINCT FROM b2.{q(k)}" for k in key)
        def differs(c: str) -> str:
            if canonical_type_str(cols_a[c]) == canonical_type_str(cols_b[c]):
                return f"(a2.{q(c)} IS DISTINCT FROM b2.{q(c)})"
            # a retyped column: compare the values' text, so e.g. 1 -> "1" is not a change
            return f"(CAST(a2.{q(c)} AS VARCHAR) IS DISTINCT FROM CAST(b2.{q(c)} AS VARCHAR))"

        differs2 = [differs(c) for c in shared]
        per_col = "".join(f', {d} AS "__d{i}"' for i, d in enumerate(differs2))
        con.execute(f"""CREATE TEMP TABLE j AS SELECT
                            {', '.join(f'COALESCE(a2.{q(k)}, b2.{q(k)}) AS {q(k)}' for k in key)},
                            a2.__in_a IS NOT NULL AS in_a, b2.__in_b IS NOT NULL AS in_b,
                            ({' OR '.join(differs2) or 'FALSE'}) AS changed {per_col}
                        FROM a2 FULL OUTER JOIN b2 ON {on2}""")
        added, removed, changed = con.execute(
            "SELECT COUNT(*) FILTER (WHERE in_b AND NOT in_a), COUNT(*) FILTER (WHERE in_a AND NOT in_b), "
            "COUNT(*) FILTER (WHERE in_a AND in_b AND changed) FROM j").fetchone()

        def sample(where: str) -> list[dict[str, Any]]:
            rows = con.execute(f"SELECT {keys} FROM j WHERE {where} ORDER BY {keys} LIMIT {int(samples)}").fetchall()
            return [{k: _jsonable(v) for k, v in zip(key, row)} for row in rows]

        by_column = {}
        if shared:
            counts = con.execute("SELECT " + ", ".join(f'COUNT(*) FILTER (WHERE in_a AND in_b AND "__d{i}")'
                                                          for i in range(len(shared))) + " FROM j").fetchone()
            by_column = {c: int(n) for c, n in zip(shared, counts) if n}
        return {
            "key": list(key), "added": int(added), "removed": int(removed), "changed": int(changed),
            "changed_by_column": by_column,
            "samples": {"added": sample("in_b AND NOT in_a"), "removed": sample("in_a AND NOT in_b"),
                        "changed": sample("in_a AND in_b AND changed")},
        }
    finally:
        con.close()


# --- verification --------------------------------------------------------------------------


def _object_refs(value, out: list[ObjectRef]) -> None:
    if isinstance(value, ObjectRef):
        out.append(value)
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            _object_refs(getattr(value, field.name), out)
    elif isinstance(value, dict):
        for v in value.values():
            _object_refs(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _object_refs(v, out)


def verify_workspace(workspace: Workspace, *, deep: bool = False, gc: bool = False,
                     grace_seconds: float = 3600.0) -> dict[str, Any]:
    """Re-hash every object that a record references and every object in storage.

    Returns a report with ``changed`` and ``missing`` objects (the problems), ``unreferenced``
    objects (committed by a write that was interrupted before its record; harmless) and
    ``temp`` files of writes in progress or interrupted. With ``gc``, unreferenced objects and
    temp files older than ``grace_seconds`` are deleted.
    """
    from tether.records import RECORD_KINDS

    storage, store = workspace.storage, workspace.store
    referenced: dict[str, list[tuple[ObjectRef, str]]] = {}
    snapshots = []
    for kind in RECORD_KINDS:
        for record in store.find(kind):
            refs: list[ObjectRef] = []
            _object_refs(record, refs)
            for ref in refs:
                referenced.setdefault(ref.key, []).append((ref, record.id))
            if kind == "snapshot":
                snapshots.append(record)
    changed, missing, unreferenced, mismatched_fp = [], [], [], []
    checked = 0
    stored = set(storage.iter_keys())
    for key, uses in sorted(referenced.items()):
        ref, first = uses[0]
        if key not in stored:
            missing.append({"key": key, "records": sorted({rid for _, rid in uses})})
            continue
        actual = storage.digest_of_key(key)
        checked += 1
        expected = {r.digest for r, _ in uses}
        if actual not in expected or len(expected) > 1:
            changed.append({"key": key, "expected": sorted(expected)[0], "actual": actual,
                            "records": sorted({rid for _, rid in uses})})
    for key in sorted(stored - set(referenced)):
        actual = storage.digest_of_key(key)
        checked += 1
        named = storage.digest_in_key(key)
        if named is not None and named != actual:
            changed.append({"key": key, "expected": named, "actual": actual, "records": []})
        else:
            unreferenced.append(key)
    if deep:
        bad_keys = {c["key"] for c in changed} | {m["key"] for m in missing}
        for snap in snapshots:
            if any(ref.key in bad_keys for ref in snap.objects):
                continue
            actual = recompute_fingerprint(workspace, snap)
            if actual != snap.fingerprint:
                mismatched_fp.append({"snapshot": snap.id, "expected": snap.fingerprint, "actual": actual})
    temp = [{"name": n, "age_seconds": round(age, 1)} for n, age in storage.iter_temp()]
    removed = []
    if gc:
        for key in unreferenced:
            age = _object_age(storage, key)
            if age is None or age >= grace_seconds:
                storage.delete(key)
                removed.append(key)
        for item in temp:
            if item["age_seconds"] >= grace_seconds:
                storage.delete_temp(item["name"])
                removed.append(".tmp/" + item["name"])
    return {
        "ok": not (changed or missing or mismatched_fp),
        "checked": checked, "records": sum(len(v) for v in referenced.values()),
        "changed": changed, "missing": missing, "fingerprint_mismatch": mismatched_fp,
        "unreferenced": unreferenced, "temp": temp, "removed": removed,
    }


def _object_age(storage, key: str) -> float | None:
    age_of = getattr(storage, "age_of", None)
    if callable(age_of):
        return age_of(key)
    path_of = getattr(storage, "path", None)
    if isinstance(path_of, Path):
        import time

        try:
            return time.time() - (path_of / key).stat().st_mtime
        except OSError:
            return None
    return None


# --- hooks ---------------------------------------------------------------------------------


@hookimpl(trylast=True)
def tether_snapshot(stage, context):
    source = context.backend(stage)
    preflight = getattr(source, "preflight", None)
    if callable(preflight):
        preflight(context=context)
    data = source.read(context=context)
    return take_snapshot(data, name=source.dataset or stage.id, source=source.describe(),
                         workspace=context.workspace, time_column=source.time_column, key=source.key,
                         card=source.card, context=context, log=context.log)


@hookimpl
def tether_add_backends(backends):
    backends.add(CsvSource)
    backends.add(ParquetSource)
    backends.add(PythonSource)
    backends.add(SqlSource)


@hookimpl
def tether_add_commands(cli):
    _add_commands(cli)


# --- command line ------------------------------------------------------------------------------


def _add_commands(cli) -> None:
    import click

    from tether.cli import emit, json_option, open_workspace, workspace_option

    @cli.group()
    def snapshot() -> None:
        """Create, list, show, materialise and compare dataset snapshots."""

    @snapshot.command("create")
    @click.argument("source")
    @click.option("--name", required=True, help="Dataset name; each distinct content becomes its next version.")
    @click.option("--time-column", help="Date/time column: the card's time range is computed from it.")
    @click.option("--key", "keys", multiple=True, metavar="COLUMN", help="Key column(s), for row-level diffs.")
    @click.option("--query", help="SQL query when SOURCE is a database (sqlite:///file.db or a postgresql:// DSN).")
    @click.option("--card", "card_file", type=click.Path(dir_okay=False),
                  help="YAML/JSON file with declared card fields (owner, description, ...).")
    @workspace_option
    @json_option
    @click.pass_context
    def create(ctx, source, name, time_column, keys, query, card_file, workspace, json_output):
        """Snapshot SOURCE (a CSV/Parquet file, a Parquet folder, or a database with --query); print its id."""
        card = _read_card_file(card_file) if card_file else None
        ws = open_workspace(ctx, workspace)
        try:
            if query is not None or source.startswith(("sqlite:///", "postgresql://", "postgres://")):
                if not query:
                    raise ConfigError(f"--query: a database source needs a query (SOURCE is {source.split(':')[0]})")
                backend = SqlSource(url=source, query=query)
                backend.preflight(context=None)
                data = backend.read(context=None)
                described = backend.describe()
            else:
                path = Path(source)
                if not path.exists():
                    raise DataError(f"source '{source}' not found")
                data, described = path, _describe_input(path)
            record = take_snapshot(data, name=name, source=described, workspace=ws, time_column=time_column,
                                   key=keys, card=card)
        finally:
            ws.close()
        emit(ctx, record, lambda: click.echo(record.id))

    @snapshot.command("ls")
    @click.argument("name", required=False)
    @workspace_option
    @json_option
    @click.pass_context
    def ls(ctx, name, workspace, json_output):
        """List snapshots (the versions of NAME, or every dataset's)."""
        ws = open_workspace(ctx, workspace)
        found = sorted(ws.store.find("snapshot", name=name), key=lambda r: (r.name, r.version or 0))
        ws.close()
        if name and not found:
            raise NotFoundError(f"no snapshots of dataset '{name}' (see `tether snapshot ls`)")

        def human():
            if not found:
                click.echo("no snapshots")
            for r in found:
                click.echo(f"{r.name}@{r.version or '?':<4} {r.id}  {r.num_rows:>12,} rows x {len(r.columns):<3} cols  "
                           f"{r.created_at:%Y-%m-%d %H:%M:%S}  {r.source}")

        emit(ctx, found, human)

    @snapshot.command("show")
    @click.argument("ref")
    @workspace_option
    @json_option
    @click.pass_context
    def show(ctx, ref, workspace, json_output):
        """Show a snapshot's dataset card (REF: id, NAME or NAME@VERSION)."""
        ws = open_workspace(ctx, workspace)
        record = resolve_snapshot(ws.store, ref)
        ws.close()
        emit(ctx, record, lambda: click.echo(format_card(record)))

    @snapshot.command("get")
    @click.argument("ref")
    @click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this .parquet or .csv file.")
    @click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), help="Default: from --output's suffix.")
    @workspace_option
    @json_option
    @click.pass_context
    def get(ctx, ref, output, fmt, workspace, json_output):
        """Materialise the exact data of a snapshot, verified, to a file (or CSV on stdout)."""
        import sys

        ws = open_workspace(ctx, workspace)
        try:
            record = resolve_snapshot(ws.store, ref)
            if output:
                path = write_snapshot(ws, record, output, fmt)
                emit(ctx, {"snapshot": record.id, "output": str(path), "rows": record.num_rows},
                     lambda: click.echo(str(path)))
                return
            if fmt == "parquet":
                raise ConfigError("--format parquet needs --output FILE")
            import pyarrow as pa
            import pyarrow.csv as pacsv

            sink = pa.output_stream(sys.stdout.buffer)
            first = True
            for batch in iter_snapshot_batches(ws, record):
                batch = pa.RecordBatch.from_arrays(batch.columns, schema=batch.schema.remove_metadata())
                pacsv.write_csv(batch, sink, write_options=pacsv.WriteOptions(include_header=first))
                first = False
            sink.flush()
        finally:
            ws.close()

    @snapshot.command("diff")
    @click.argument("a")
    @click.argument("b")
    @click.option("--key", "keys", multiple=True, metavar="COLUMN", help="Key column(s); default: the declared key.")
    @click.option("--samples", default=5, show_default=True, help="Sample keys shown per kind of change.")
    @workspace_option
    @json_option
    @click.pass_context
    def diff(ctx, a, b, keys, samples, workspace, json_output):
        """Compare two snapshots: schema, rows by key, summary statistics."""
        ws = open_workspace(ctx, workspace)
        try:
            ra, rb = resolve_snapshot(ws.store, a), resolve_snapshot(ws.store, b)
            report = diff_snapshots(ws, ra, rb, key=keys, samples=samples)
        finally:
            ws.close()
        emit(ctx, report, lambda: click.echo(format_diff(report)))

    @cli.command("verify")
    @click.option("--deep", is_flag=True, help="Also re-read every snapshot and recompute its data fingerprint.")
    @click.option("--gc", is_flag=True, help="Delete unreferenced objects and temp files older than --grace.")
    @click.option("--grace", default=3600.0, show_default=True, help="Seconds a leftover must be old for --gc.")
    @workspace_option
    @json_option
    @click.pass_context
    def verify(ctx, deep, gc, grace, workspace, json_output):
        """Re-hash every stored object and report any that changed or are missing (exit 1 if so)."""
        ws = open_workspace(ctx, workspace)
        try:
            report = verify_workspace(ws, deep=deep, gc=gc, grace_seconds=grace)
        finally:
            ws.close()

        def human():
            for item in report["changed"]:
                used = f" (used by {', '.join(item['records'])})" if item["records"] else ""
                click.echo(f"CHANGED  {item['key']}{used}: expected {item['expected']}, found {item['actual']}")
            for item in report["missing"]:
                click.echo(f"MISSING  {item['key']} (used by {', '.join(item['records'])})")
            for item in report["fingerprint_mismatch"]:
                click.echo(f"DATA     snapshot {item['snapshot']}: fingerprint {item['actual']} != recorded "
                           f"{item['expected']}")
            extra = []
            if report["unreferenced"]:
                extra.append(f"{len(report['unreferenced'])} unreferenced objects from interrupted writes")
            if report["temp"]:
                extra.append(f"{len(report['temp'])} temp files")
            if report["removed"]:
                extra.append(f"{len(report['removed'])} removed by --gc")
            elif extra:
                extra.append("remove them with `tether verify --gc`")
            status = "ok" if report["ok"] else "FAILED"
            click.echo(f"verify {status}: {report['checked']} objects re-hashed, {len(report['changed'])} changed, "
                       f"{len(report['missing'])} missing" + (f"; {'; '.join(extra)}" if extra else ""))

        emit(ctx, report, human)
        if not report["ok"]:
            problems = [f"{len(report[k])} {k.replace('_', ' ')}" for k in ("changed", "missing", "fingerprint_mismatch")
                        if report[k]]
            first = (report["changed"] or report["missing"] or [{"key": report["fingerprint_mismatch"][0]["snapshot"]}])[0]
            raise IntegrityError(f"verify failed in {ws.root}: {', '.join(problems)} (first: '{first['key']}')")



def _read_card_file(path: str) -> dict[str, Any]:
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--card: cannot read '{path}': {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--card: '{path}' is not valid YAML/JSON: {_first_line(exc)}") from None
    return declared_card(data, where=f"--card {path}")


def format_card(r: DatasetSnapshot) -> str:
    card = r.card
    lines = [f"snapshot {r.id}", f"  dataset        {r.name} v{r.version}" + (f" (declared version {card.version})"
                                                                              if card.version else "")]
    lines.append(f"  fingerprint    {r.fingerprint}")
    lines.append(f"  created        {r.created_at:%Y-%m-%d %H:%M:%S}Z")
    lines.append(f"  source         {r.source}")
    declared = [("description", card.description), ("owner", card.owner),
                ("source systems", ", ".join(card.source_systems)), ("selection", card.selection),
                ("filters", "; ".join(card.filters)), ("exclusions", "; ".join(card.exclusions)),
                ("label", card.label_definition), ("preprocessing", "; ".join(card.preprocessing)),
                ("limitations", "; ".join(card.limitations))]
    for label, value in declared:
        lines.append(f"  {label:<14} {value or '(not declared)'}")
    lines.append(f"  synthetic      {'yes' if card.synthetic else 'no'}")
    lines.append(f"  rows x cols    {card.num_rows:,} x {card.num_columns}")
    if card.time_range:
        lines.append(f"  time range     {card.time_range[0]:%Y-%m-%d %H:%M:%S} .. {card.time_range[1]:%Y-%m-%d %H:%M:%S}"
                     f" (column {r.time_column})")
    if r.key_columns:
        lines.append(f"  key            {', '.join(r.key_columns)}")
    lines.append(f"  stored         {len(r.objects)} Parquet object(s), {r.size_bytes:,} bytes")
    lines.append("  columns:")
    for c in card.columns:
        if c.top:
            shape = "top " + ", ".join(f"{v} ({n})" for v, n in c.top[:3]) + f"; {c.distinct} distinct"
        elif c.min is not None:
            shape = f"min {c.min}  max {c.max}" + (f"  mean {c.mean:.6g}" if c.mean is not None else "")
        else:
            shape = ""
        lines.append(f"    {c.name:<20} {c.type:<24} missing {c.missing_share:>7.2%}  {shape}")
    return "\n".join(lines)


def format_diff(report: dict[str, Any]) -> str:
    a, b = report["a"], report["b"]
    lines = [f"{a['name']}@{a['version']} ({a['id']}, {a['rows']:,} rows) -> {b['name']}@{b['version']} "
             f"({b['id']}, {b['rows']:,} rows)" + ("  identical data" if report["identical"] else "")]
    schema = report["schema"]
    if not any(schema.values()):
        lines.append("schema: unchanged")
    for item in schema["added"]:
        lines.append(f"schema: + {item['column']} ({item['type']})")
    for item in schema["removed"]:
        lines.append(f"schema: - {item['column']} ({item['type']})")
    for item in schema["retyped"]:
        lines.append(f"schema: ~ {item['column']} {item['from']} -> {item['to']}")
    rows = report["rows"]
    if rows.get("note"):
        lines.append(f"rows: {rows['note']}")
    else:
        lines.append(f"rows by key ({', '.join(rows['key'])}): {rows['added']:,} added, {rows['removed']:,} removed, "
                     f"{rows['changed']:,} changed")
        for kind in ("added", "removed", "changed"):
            if rows["samples"][kind]:
                lines.append(f"  {kind} e.g. " + "; ".join(", ".join(f"{k}={v}" for k, v in s.items())
                                                        for s in rows["samples"][kind]))
        if rows["changed_by_column"]:
            lines.append("  changed values per column: " + ", ".join(f"{c} {n:,}" for c, n in
                                                                  rows["changed_by_column"].items()))
    for item in report["statistics"]:
        parts = [f"{k} {v['from']} -> {v['to']}" for k, v in item.items() if isinstance(v, dict)]
        if parts:
            lines.append(f"stats: {item['column']}: " + "; ".join(parts))
    return "\n".join(lines)
