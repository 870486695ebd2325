"""A snapshot's Parquet parts written by the Dask workers (the ``write_parts`` operation).

Per partition, two tasks: ``tether-read-<i>`` reads the partition and casts it to the
snapshot's storable schema; ``tether-write_parts-<i>`` (on the same worker, where the
table is) encodes it as one zstd Parquet part into the temp file the client reserved for
it. The client receives the tables in partition order, at most ``in_flight`` partitions
outstanding, and hashes them into the one streaming fingerprint: the expensive encoding
runs in parallel on the workers, the hash stays sequential and identical to the local
engine's.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from tether.errors import DataError, EngineError
from tether.plugins.engines.partitions import Partition, plan, read_batches

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


# -- on the workers ----------------------------------------------------------------------------


def read_storable(part: Partition, schema: pa.Schema, storable: pa.Schema) -> pa.Table:
    """One partition read in the dataset's ``schema`` and cast to the snapshot's ``storable``
    schema: the values the client hashes and the part stores."""
    import pyarrow as pa
    from tether.plugins.tables import first_line

    table = pa.Table.from_batches(list(read_batches(part, schema)), schema=schema)
    if table.schema.equals(storable, check_metadata=False):
        return table
    try:
        return table.cast(storable)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
        raise DataError(f"source '{part.path}': its rows cannot be stored as Parquet ({first_line(exc)})") from None


def write_part(table: pa.Table, storable: pa.Schema, target: str) -> int:
    """``table`` as one Parquet part in the reserved temp file ``target`` (pieces and writer
    settings as the client's ``PartWriter``); an empty table writes nothing. Its rows."""
    from tether.plugins.snapshots.conform import iter_pieces
    from tether.plugins.snapshots.writer import write_part_file

    if table.num_rows == 0:
        return 0
    return write_part_file(target, storable, iter_pieces(table.to_batches()))


# -- on the client -----------------------------------------------------------------------------


def write_parts(engine, path, *, schema: Callable, part_path: Callable) -> Iterator[tuple[Any, str, int]]:
    """``(table, part path, rows)`` per partition of ``path``, in order (see
    ``tether.backends.Engine.write_parts``); ``engine`` is the ``DaskEngine``."""
    from tether.plugins.progress import Progress

    from .errors import mapped_errors

    layout = plan(path)
    storable = schema(layout.schema)  # the caller's checks run before anything is submitted
    client = engine.client()
    parts = layout.partitions
    # counted as partitions of the snapshot's read stream, as on the engine's plain ``read``
    progress = Progress("read", len(parts), engine=engine.name, every=engine.progress_every)
    token = os.urandom(4).hex()
    pending: deque = deque()

    def submit(part: Partition) -> None:
        target = str(part_path(part.index))
        n = len(parts) - part.index  # earlier partitions first; a write before the next read
        read = client.submit(read_storable, part, layout.schema, storable,
                             key=f"tether-read-{part.index:05d}-{token}", priority=2 * n)
        written = client.submit(write_part, read, storable, target,
                                key=f"tether-write_parts-{part.index:05d}-{token}", priority=2 * n + 1)
        pending.append((part.index, read, written, target))

    def receive() -> tuple[Any, str, int]:
        index, read, written, target = pending.popleft()
        with mapped_errors("read"):
            table = read.result()
        with mapped_errors("write_parts"):
            rows = written.result()
        read.release()
        written.release()
        if rows:
            _check_visible(target, rows, index)
        progress.step()
        return table, target, rows

    try:
        with mapped_errors("write_parts"):
            for part in parts:
                submit(part)
                if len(pending) >= engine.in_flight:
                    yield receive()
            while pending:
                yield receive()
    finally:
        progress.close()
        if pending:
            client.cancel([f for _, read, written, _ in pending for f in (read, written)])


def _check_visible(target: str, rows: int, index: int) -> None:
    """The part a worker wrote is a file this process reads (the storage is shared)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        seen = pq.read_metadata(target).num_rows
    except (OSError, pa.ArrowInvalid):
        seen = None
    if seen != rows:
        raise EngineError(f"dask engine: a worker wrote partition {index} to '{target}', but this process does not "
                          "see that file: put the workspace's storage on a file system the workers share")
