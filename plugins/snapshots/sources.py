"""The source backends a snapshot stage reads (``plugin:`` in a chain): ``csv``, ``parquet``
(a file or a partitioned folder), ``python`` (a function returning a DataFrame, a table or
record batches) and ``sql`` (a query against SQLite or PostgreSQL)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from tether.backends import Source
from tether.callables import import_callable
from tether.errors import ConfigError, DataError
from tether.validators import at_least, single_character

from .card import check_card

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@attrs.frozen(kw_only=True)
class _DatasetParams:
    """Parameters every source accepts."""

    dataset: str = ""  # the dataset's name; defaults to the stage id
    time_column: str | None = None
    key: tuple[str, ...] = ()
    card: dict[str, Any] = attrs.field(factory=dict, validator=check_card)


@attrs.frozen(kw_only=True)
class CsvSource(_DatasetParams, Source):
    """A CSV file, read in blocks (types inferred from the first block)."""

    name: ClassVar[str] = "csv"
    path: str
    delimiter: str = attrs.field(default=",", validator=single_character)
    block_size: int = attrs.field(default=16 << 20, validator=at_least(1))

    def preflight(self, *, context) -> None:
        path = context.resolve_path(self.path)
        if not path.is_file():
            raise DataError(f"source file '{path}' not found")

    def read(self, *, context) -> Iterator[pa.RecordBatch]:
        from tether.plugins.tables import read_csv_batches

        return read_csv_batches(context.resolve_path(self.path), delimiter=self.delimiter,
                                block_size=self.block_size)

    def describe(self) -> str:
        return f"csv:{self.path}"


@attrs.frozen(kw_only=True)
class ParquetSource(_DatasetParams, Source):
    """A Parquet file or a folder of them (hive partitions allowed), streamed in batches."""

    name: ClassVar[str] = "parquet"
    #: a chain's engine reads the folder's partitions and, when its workers can write to the
    #: workspace's storage, encodes them as the snapshot's objects (see docs/scaling.md)
    engine_operations: ClassVar[tuple[str, ...]] = ("read", "write_parts")
    path: str
    batch_rows: int = 128 * 1024

    def preflight(self, *, context) -> None:
        path = context.resolve_path(self.path)
        if not path.exists():
            raise DataError(f"source '{path}' not found")

    def read(self, *, context) -> Iterable[pa.RecordBatch]:
        """The rows as record batches; on a chain's engine, a ``PartitionedBatches`` that
        ``take_snapshot`` hands to the engine's ``write_parts`` when it can."""
        from tether.plugins.engines.partitions import PartitionedBatches
        from tether.plugins.tables import read_parquet_batches

        path = context.resolve_path(self.path)
        engine_for = getattr(context, "engine_for", None)  # None outside a run
        engine = engine_for("read") if engine_for is not None else None
        if engine is not None:
            return PartitionedBatches(path=path, engine=engine, batch_rows=self.batch_rows)
        return read_parquet_batches(path, batch_rows=self.batch_rows)

    def describe(self) -> str:
        return f"parquet:{self.path}"


@attrs.frozen(kw_only=True)
class PythonSource(_DatasetParams, Source):
    """Rows from ``module:function``, which returns a DataFrame, an Arrow table or batches."""

    name: ClassVar[str] = "python"
    function: str
    kwargs: dict[str, Any] = attrs.field(factory=dict)

    def read(self, *, context):
        return import_callable(self.function, where=f"python source '{self.function}'")(**self.kwargs)

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
        from .database import read_postgres, read_sqlite

        if self.is_postgres():
            return read_postgres(self.url.replace("postgresql+psycopg://", "postgresql://"), self.query,
                                 self.batch_rows)
        return read_sqlite(_sqlite_path(self.url, context), self.query, self.batch_rows)

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
