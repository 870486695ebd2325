"""Window sources (backend kind ``window``): where a monitor's current window comes from.

Each yields Arrow record batches in bounded memory: ``snapshot`` (a stored snapshot),
``file`` (a CSV or Parquet file, or a folder of Parquet files, read by
:mod:`tether.plugins.tables`) and ``deployment`` (the
prediction table a deployment wrote). A deployment plugin adds its own (e.g. a prediction
log) by subclassing :class:`tether.backends.Window`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import attrs
from tether.backends import Window
from tether.errors import DataError, NotFoundError
from tether.records import ObjectRef
from tether.validators import at_least

DEFAULT_BATCH_ROWS = 262_144


def _parquet_batches(path_or_buffer, batch_rows: int, columns=None) -> Iterator:
    import pyarrow.parquet as pq

    # no pre-buffering of whole row groups and a small read buffer: memory follows batch_rows
    pf = pq.ParquetFile(path_or_buffer, pre_buffer=False, buffer_size=1 << 20)
    if pf.metadata.num_rows == 0:
        import pyarrow as pa

        yield pa.RecordBatch.from_pylist([], schema=pf.schema_arrow)  # the schema still counts
        return
    yield from pf.iter_batches(batch_size=batch_rows, columns=columns)


def stored_batches(workspace, ref: ObjectRef, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator:
    """Record batches of a stored Parquet object; read from disk in chunks when the storage
    offers ``verified_path`` (a local file checked against the digest), else from the
    verified bytes."""
    import pyarrow as pa

    storage = workspace.storage
    verified_path = getattr(storage, "verified_path", None)  # optional Storage method
    source = str(verified_path(ref)) if verified_path is not None else pa.BufferReader(storage.read_bytes(ref))
    for batch in _parquet_batches(source, batch_rows):
        if batch is not None:
            yield batch


@attrs.frozen(kw_only=True)
class SnapshotWindow(Window):
    """A stored snapshot, by id."""

    name: ClassVar[str] = "snapshot"
    snapshot: str  # id, id prefix, NAME or NAME@VERSION
    batch_rows: int = attrs.field(default=DEFAULT_BATCH_ROWS, validator=at_least(1))

    def record(self, context):
        return context.workspace.resolve(self.snapshot, kind="snapshot", hint="tether snapshots ls")

    def batches(self, *, context):
        snap = self.record(context)
        for ref in snap.objects:
            yield from stored_batches(context.workspace, ref, self.batch_rows)

    def time_column_of(self, *, context):
        return self.record(context).time_column

    def describe(self) -> str:
        return f"snapshot:{self.snapshot}"


@attrs.frozen(kw_only=True)
class FileWindow(Window):
    """A CSV or Parquet file (or a folder of Parquet files), read ``batch_rows`` at a time."""

    name: ClassVar[str] = "file"
    #: a chain's engine profiles a Parquet file or folder (see docs/scaling.md)
    engine_operations: ClassVar[tuple[str, ...]] = ("profile",)
    path: str
    time_column: str | None = None
    batch_rows: int = attrs.field(default=DEFAULT_BATCH_ROWS, validator=at_least(1))

    def batches(self, *, context):
        from tether.plugins.engines.partitions import PartitionedBatches, is_parquet

        path = context.resolve_path(self.path) if context is not None else Path(self.path)
        engine_for = getattr(context, "engine_for", None)  # None outside a run
        engine = engine_for("profile") if engine_for is not None and is_parquet(path) else None
        if engine is not None:
            return PartitionedBatches(path=path, engine=engine, batch_rows=self.batch_rows)
        return file_batches(path, self.batch_rows)

    def time_column_of(self, *, context) -> str | None:
        return self.time_column

    def describe(self) -> str:
        return f"file:{self.path}"


def file_batches(path, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator:
    """Record batches of a CSV/Parquet file or a folder of Parquet files, read by
    :func:`tether.plugins.tables.iter_file_batches` (the one reader of users' files)."""
    from tether.plugins.tables import iter_file_batches

    yield from iter_file_batches(Path(path), batch_rows=batch_rows)


@attrs.frozen(kw_only=True)
class DeploymentWindow(Window):
    """The prediction table a deployment wrote (its ``outputs``); ``latest`` picks the newest."""

    name: ClassVar[str] = "deployment"
    deployment: str = "latest"
    batch_rows: int = attrs.field(default=DEFAULT_BATCH_ROWS, validator=at_least(1))

    def record(self, context):
        if self.deployment == "latest":
            found = context.store.find("deployment", limit=1)
            if not found:
                raise NotFoundError(f"no deployment in {context.workspace.root} to monitor")
            return found[0]
        return context.workspace.resolve(self.deployment, kind="deployment")

    def batches(self, *, context):
        dep = self.record(context)
        if not dep.outputs:
            raise DataError(f"deployment {dep.id} wrote no prediction table to monitor")
        for ref in dep.outputs:
            yield from stored_batches(context.workspace, ref, self.batch_rows)

    def time_column_of(self, *, context):
        dep = self.record(context)
        snap_id = dep.details.get("snapshot_id")
        snap = context.store.get(snap_id, kind="snapshot") if snap_id else None
        return snap.time_column if snap else None

    def describe(self) -> str:
        return f"deployment:{self.deployment}"

