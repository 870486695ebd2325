"""A Parquet file or folder as ordered partitions: one per file, in path order, each read
with the dataset's schema (hive partition columns added), exactly as
:func:`tether.plugins.tables.read_parquet_batches` reads the whole folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from tether.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@attrs.frozen(kw_only=True)
class Partition:
    """One file of a Parquet dataset: its place in row order, path and partition keys."""

    index: int
    path: str
    keys: dict[str, Any] = attrs.field(factory=dict)
    origin: str = ""  # the dataset's first file, named in type-mismatch errors


@attrs.frozen(kw_only=True)
class Plan:
    """The partitions of a dataset, in row order, and the schema every one is read with."""

    schema: Any  # pyarrow.Schema
    partitions: tuple[Partition, ...]

    @property
    def names(self) -> list[str]:
        return list(self.schema.names)


def plan(path: str | Path) -> Plan:
    """The partitions of the Parquet file or folder at ``path`` (files in path order)."""
    import pyarrow.dataset as ds
    from tether.plugins.tables import _open_dataset

    dataset = _open_dataset(Path(path))
    fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
    parts = []
    for i, fragment in enumerate(fragments):
        expr = fragment.partition_expression
        keys = ds.get_partition_keys(expr) if expr is not None else {}
        parts.append(Partition(index=i, path=fragment.path, keys=keys, origin=dataset.files[0]))
    return Plan(schema=dataset.schema, partitions=tuple(parts))


def partition_rows(part: Partition) -> int:
    """The rows of one partition, from its Parquet footer."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(part.path).metadata.num_rows


def offsets_of(sizes: list[int]) -> list[int]:
    """The number of each partition's first row in the dataset, from the partitions' sizes."""
    import itertools

    return [0, *itertools.accumulate(sizes)][:len(sizes)]


def read_batches(part: Partition, schema: pa.Schema, *, batch_rows: int = 128 * 1024,
                 columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of one partition in the dataset's ``schema`` (or its ``columns``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tether.plugins.tables import READ_BUFFER, _conform_batch, first_line

    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    try:
        with pq.ParquetFile(part.path, pre_buffer=False, buffer_size=READ_BUFFER) as pf:
            file_columns = [n for n in schema.names if n in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=batch_rows, columns=file_columns, use_pandas_metadata=False):
                if batch.num_rows:
                    yield _conform_batch(batch, schema, part.keys, part.path, part.origin)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"source '{part.path}' cannot be read as Parquet: {first_line(exc)}") from None


def read_table(part: Partition, schema: pa.Schema, *, columns: list[str] | None = None) -> pa.Table:
    """One partition as a table (an empty one with the schema if the file has no rows)."""
    import pyarrow as pa

    batches = list(read_batches(part, schema, columns=columns))
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    return pa.Table.from_batches(batches, schema=schema)


@attrs.frozen(kw_only=True)
class PartitionedBatches:
    """A Parquet file or folder to be read through an engine. Iterating it streams its
    record batches (read on the engine's workers, in order); a consumer with a partitioned
    version of its work (profiling, for the monitor) hands ``path`` to ``engine`` instead."""

    path: Path
    engine: Any
    batch_rows: int = 128 * 1024

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self.engine.supports("read"):
            return iter(self.engine.record_batches(self.path, batch_rows=self.batch_rows))
        from tether.plugins.tables import read_parquet_batches

        return read_parquet_batches(self.path, batch_rows=self.batch_rows)


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is a Parquet file or a folder (the inputs engines partition)."""
    from tether.plugins.tables import PARQUET_SUFFIXES

    return path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES
